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

-- The console's key lists page by (created_at, id) within a tenant, an app
-- or a status, and list the keys expiring soon: with these, a page of a
-- tenant of 30,000 keys reads one page of the index instead of sorting
-- every key of the tenant (BenchmarkPagesWith100kKeys in pkg/console).
CREATE INDEX IF NOT EXISTS keys_tenant_list_idx ON keys (account_id, tenant_id, created_at, id) WHERE tenant_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS keys_app_list_idx ON keys (account_id, app_id, created_at, id) WHERE app_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS keys_active_list_idx ON keys (account_id, active, created_at, id);
CREATE INDEX IF NOT EXISTS keys_expires_idx ON keys (account_id, expires_at) WHERE expires_at IS NOT NULL;
