-- 0005: audit outcomes (refused calls recorded as "denied") and the indexes
-- that keep filtered audit listings bounded.
--
-- The log is listed newest first in (at, id) order, and every filter of
-- ListAuditEvents (key, actor, action, action group "key.*", outcome
-- denied) has an index that starts with the account, then the
-- filter's equality, then (at, id): a filtered page, with or without a
-- time window (since/until) and a page token, is one index range scan
-- that stops after the page, whatever the size of the account's log.
-- A combination of filters scans the most selective one's index.
--
-- Adding columns with constant defaults rewrites nothing (PostgreSQL 11+).

ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS outcome text NOT NULL DEFAULT 'allowed';
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS reason text NOT NULL DEFAULT '';
DO $$ BEGIN
    ALTER TABLE audit_events ADD CONSTRAINT audit_events_outcome_check CHECK (outcome IN ('allowed', 'denied'));
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
DO $$ BEGIN
    ALTER TABLE audit_events ADD CONSTRAINT audit_events_reason_check CHECK (length(reason) <= 1024);
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

CREATE INDEX IF NOT EXISTS audit_events_at_idx ON audit_events (account_id, at DESC, id DESC);
CREATE INDEX IF NOT EXISTS audit_events_object_idx ON audit_events (account_id, object_type, object_id, at DESC, id DESC);
CREATE INDEX IF NOT EXISTS audit_events_actor_idx ON audit_events (account_id, actor_key_id, at DESC, id DESC);
CREATE INDEX IF NOT EXISTS audit_events_action_idx ON audit_events (account_id, action, at DESC, id DESC);
CREATE INDEX IF NOT EXISTS audit_events_action_group_idx ON audit_events (account_id, split_part(action, '.', 1), at DESC, id DESC);
CREATE INDEX IF NOT EXISTS audit_events_denied_idx ON audit_events (account_id, at DESC, id DESC) WHERE outcome = 'denied';
-- The (account_id, id) index served the id-ordered listing this replaces.
DROP INDEX IF EXISTS audit_events_account_idx;
