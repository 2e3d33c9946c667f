package accountcli

import (
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/keygate/keygate/pkg/account/accountv1"
)

// AuditCmd is `keygate audit`: the account's audit events.
type AuditCmd struct {
	ClientFlags
	pageFlags
}

var auditHeader = []string{"ID", "TIME", "ACTOR", "ACTION", "OBJECT"}

func (c *AuditCmd) Run(e *Env) error {
	return run(&c.ClientFlags, e, func(cl *client) error {
		var all []*accountv1.AuditEvent
		err := c.pages(cl, func(token string) (string, error) {
			r, err := call(cl, cl.api.ListAuditEvents, &accountv1.ListAuditEventsRequest{PageSize: c.PageSize, PageToken: token})
			all = append(all, r.GetEvents()...)
			return r.GetNextPageToken(), err
		})
		if err != nil {
			return err
		}
		msgs := make([]proto.Message, len(all))
		rows := make([][]string, len(all))
		for i, ev := range all {
			actor := withName(ev.GetActorKeyId(), ev.GetActorKeyName())
			if actor == "" {
				actor = "(bootstrap)"
			}
			object := ev.GetObjectType()
			if ev.GetObjectId() != "" {
				object += " " + ev.GetObjectId()
			}
			msgs[i] = ev
			rows[i] = []string{strconv.FormatInt(ev.GetId(), 10), fmtTime(ev.GetTime()), actor, ev.GetAction(), object}
		}
		return cl.out.list(msgs, auditHeader, rows)
	})
}
