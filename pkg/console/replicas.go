package console

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/keygate/keygate/pkg/account"
)

// replicasView is the replicas page (SPEC §13): every replica recorded,
// its last applied change and lag behind the feed head, live or stale;
// and how many live replicas have applied a change asked about.
type replicasView struct {
	Replicas    []account.ReplicaStatus
	Head        int64
	Err         string
	Change      string
	Sync        *account.SyncStatus
	CanSync     bool
	Live, Stale int
}

func (h *Handler) replicasPage(w http.ResponseWriter, r *http.Request, p *page) {
	ctx := r.Context()
	c := p.session.caller
	v := &replicasView{Change: strings.TrimSpace(r.URL.Query().Get("change")), CanSync: p.Can("syncStatus")}
	p.Title, p.Nav, p.Data = "Replicas", "replicas", v
	var err error
	if v.Replicas, v.Head, err = h.svc.ListReplicas(ctx, c); err != nil {
		// A keys file keeps no heartbeats: the page says so.
		_, v.Err = statusOf(err)
	}
	for _, rs := range v.Replicas {
		if rs.Live {
			v.Live++
		} else if !rs.Stopped {
			v.Stale++
		}
	}
	status := http.StatusOK
	if v.Change != "" && v.CanSync {
		n, perr := strconv.ParseInt(v.Change, 10, 64)
		if perr != nil || n <= 0 {
			p.Errors = map[string]string{"change_number": "change_number: " + strconv.Quote(v.Change) + " is not a change number (a whole number > 0, as a change returned it)"}
			status = http.StatusUnprocessableEntity
		} else if st, err := h.svc.GetSyncStatus(ctx, c, account.SyncInput{ChangeNumber: n}); err != nil {
			if !p.formError(err) {
				h.serviceError(w, r, p, err)
				return
			}
			status = http.StatusUnprocessableEntity
		} else {
			v.Sync = &st
		}
	}
	h.render(w, r, status, "replicas", p)
}
