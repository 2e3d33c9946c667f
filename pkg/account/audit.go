package account

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/keygate/keygate/pkg/store"
)

// AuditFilter selects events of ListAuditEvents; zero fields select
// everything, set fields must all match.
type AuditFilter struct {
	// KeyID: events about that key (its creation, changes, deletion and
	// refused attempts on it).
	KeyID string
	// ActorKeyID: events made, or attempted, by that account key.
	ActorKeyID string
	// Action: one action ("key.update"), or every action on one type of
	// object ("key.*").
	Action string
	// Outcome: "allowed" (changes made) or "denied" (calls refused).
	Outcome string
	// Since and Until select events with Since <= time < Until.
	Since, Until time.Time
}

// Sizes of audit filter values.
const (
	maxActionLen = 64
)

var (
	actionPattern      = regexp.MustCompile(`^[a-z][a-z_]*(\.[a-z][a-z_]*)+$`)
	actionGroupPattern = regexp.MustCompile(`^([a-z][a-z_]*)\.\*$`)
)

// storeFilter checks f into v and returns the store's filter: "key.*" becomes
// the action group "key".
func (f AuditFilter) storeFilter(v *Violations) store.AuditFilter {
	out := store.AuditFilter{KeyID: f.KeyID, ActorKeyID: f.ActorKeyID,
		Outcome: f.Outcome, Since: f.Since.UTC(), Until: f.Until.UTC()}
	if f.Since.IsZero() {
		out.Since = time.Time{}
	}
	if f.Until.IsZero() {
		out.Until = time.Time{}
	}
	if len(f.KeyID) > MaxIDLen {
		v.add("key_id", "longer than %d bytes", MaxIDLen)
	}
	if len(f.ActorKeyID) > MaxIDLen {
		v.add("actor_key_id", "longer than %d bytes", MaxIDLen)
	}
	switch m := actionGroupPattern.FindStringSubmatch(f.Action); {
	case f.Action == "":
	case len(f.Action) > maxActionLen:
		v.add("action", "longer than %d bytes", maxActionLen)
	case m != nil:
		out.ActionGroup = m[1]
	case actionPattern.MatchString(f.Action):
		out.Action = f.Action
	default:
		v.add("action", "%q is not an action: give one such as key.update, or every action on one type of object such as key.*", f.Action)
	}
	switch f.Outcome {
	case "", store.OutcomeAllowed, store.OutcomeDenied:
	default:
		v.add("outcome", "%q is not an outcome: give allowed or denied", f.Outcome)
	}
	if !out.Since.IsZero() && !out.Until.IsZero() && !out.Since.Before(out.Until) {
		v.add("since", "must be before until (%s is not before %s)", out.Since.Format(time.RFC3339), out.Until.Format(time.RFC3339))
	}
	return out
}

// ListAuditEvents returns one page of the caller's audit events that pass
// f, newest first, and the next page's token (which must be used with the
// same filter).
func (s *Service) ListAuditEvents(ctx context.Context, c Caller, f AuditFilter, p PageInput) ([]store.AuditEvent, string, error) {
	if err := s.check(c); err != nil {
		return nil, "", err
	}
	var v Violations
	v.checkPage(p.Size, p.Token)
	sf := f.storeFilter(&v)
	if err := v.err(); err != nil {
		return nil, "", err
	}
	if s.readOnly != nil {
		return nil, "", noAuditLog()
	}
	evs, next, err := pageOf(p, func(pg store.Page) ([]store.AuditEvent, string, error) {
		return s.store.ListAuditEvents(ctx, c.AccountID, sf, pg)
	}, eventBytes, eventToken)
	if err != nil {
		return nil, "", s.storeError(ctx, "ListAuditEvents", "page", err)
	}
	return evs, next, nil
}

// reasonScopeExceedsCaller is the reason code of the escalation rule's
// refusals (withinCaller).
const reasonScopeExceedsCaller = "scope_exceeds_caller"

// recordTimeout bounds writing a denied event, which runs even when the
// caller has gone: hanging up at once must not keep an attempt out of
// the log.
const recordTimeout = 5 * time.Second

// refused records a call that the escalation rule refused (err, from
// withinCaller) as an audit event with outcome denied — the calling key,
// the action it attempted on which key, the key as it is and as the call
// would have made it (records without hash or secret) — and returns err,
// the refusal, whatever the recording does. The write is bounded per
// calling key (callLimiter.recordDenied): past it, refusals are counted
// and the next recorded one says how many were left out.
func (s *Service) refused(ctx context.Context, c Caller, err error, action, keyID string, before, after *store.KeyAudit) error {
	var e *Error
	if !errors.As(err, &e) || !strings.HasPrefix(e.Message, reasonScopeExceedsCaller+":") {
		return err
	}
	ok, skipped := s.limiter.recordDenied(c.AccountID, c.Actor.KeyID, s.now())
	if !ok {
		return err
	}
	reason := e.Message
	if skipped > 0 {
		reason += fmt.Sprintf(" (%d earlier refusals of this key were not recorded: more than %d per second)", skipped, deniedRecordsPerSecond)
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if werr := s.store.RecordDenied(rctx, c.Actor, c.AccountID, store.DeniedEvent{
		Action: action, ObjectType: "key", ObjectID: keyID, Reason: reason, Before: before, After: after,
	}); werr != nil {
		s.log.Error("account API: recording a refused call in the audit log", "action", action, "key_id", keyID,
			"account_id", c.AccountID, "actor_key_id", c.Actor.KeyID, "err", werr)
	}
	s.log.Warn("account API: call refused by the escalation rule", "action", action, "key_id", keyID,
		"account_id", c.AccountID, "actor_key_id", c.Actor.KeyID)
	return err
}
