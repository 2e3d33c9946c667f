-- 0012: console sessions (SPEC §15).
--
-- A session is opened with an account key and lives here so that any
-- replica serves it. Only the SHA-256 of the session secret is stored:
-- the secret is in the browser's cookie. A session ends with its key:
-- deleting the key (or its account) deletes its sessions; deactivation
-- and expiry are checked on every request. Idle and old sessions are
-- swept by whichever replica opens the next one (the idle index).
-- Idempotent like the others.

CREATE TABLE IF NOT EXISTS console_sessions (
    id           text        NOT NULL,
    secret_hash  bytea       NOT NULL,
    account_id   text        NOT NULL,
    key_id       text        NOT NULL,
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    CONSTRAINT console_sessions_pkey PRIMARY KEY (id),
    CONSTRAINT console_sessions_key_fkey FOREIGN KEY (account_id, key_id)
        REFERENCES keys (account_id, id) ON DELETE CASCADE,
    CONSTRAINT console_sessions_secret_hash_check CHECK (length(secret_hash) = 32)
);
CREATE INDEX IF NOT EXISTS console_sessions_last_seen_idx ON console_sessions (last_seen_at);
CREATE INDEX IF NOT EXISTS console_sessions_key_idx ON console_sessions (account_id, key_id);
