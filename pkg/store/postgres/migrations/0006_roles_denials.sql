-- 0006: roles and service access denials (SPEC §11).
--
-- A role is an account-level named scope that keys hold (key_roles); a
-- denial blocks one tenant of one app from what its scope names, with a
-- reason text. Both reach the change feed (kinds 'role' and 'denial'),
-- one row per role or denial written whatever the number of keys it
-- touches (SPEC §10); both are counted in account_limits for their quotas.
-- Idempotent like the others.

CREATE TABLE IF NOT EXISTS roles (
    account_id  text        NOT NULL,
    id          text        NOT NULL,
    name        text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    scope       text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT roles_pkey PRIMARY KEY (account_id, id),
    CONSTRAINT roles_name_key UNIQUE (account_id, name),
    CONSTRAINT roles_account_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE,
    CONSTRAINT roles_id_check CHECK (length(id) BETWEEN 1 AND 128 AND id !~ '[[:cntrl:][:space:]]'),
    CONSTRAINT roles_name_check CHECK (length(name) BETWEEN 1 AND 256 AND name !~ '[[:cntrl:]]' AND name = btrim(name)),
    CONSTRAINT roles_description_check CHECK (length(description) <= 4096),
    CONSTRAINT roles_scope_check CHECK (btrim(scope, E' \t\r\n') <> '' AND length(scope) <= 8192)
);

CREATE TABLE IF NOT EXISTS denials (
    account_id text        NOT NULL,
    id         text        NOT NULL,
    tenant_id  text        NOT NULL,
    app_id     text        NOT NULL,
    scope      text        NOT NULL,
    reason     text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT denials_pkey PRIMARY KEY (account_id, id),
    CONSTRAINT denials_account_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE,
    -- Deleting the tenant or the app deletes its denials (each recorded on
    -- the feed by the delete trigger below).
    CONSTRAINT denials_tenant_fkey FOREIGN KEY (account_id, tenant_id) REFERENCES tenants (account_id, id) ON DELETE CASCADE,
    CONSTRAINT denials_app_fkey FOREIGN KEY (account_id, app_id) REFERENCES apps (account_id, id) ON DELETE CASCADE,
    CONSTRAINT denials_id_check CHECK (length(id) BETWEEN 1 AND 128 AND id !~ '[[:cntrl:][:space:]]'),
    CONSTRAINT denials_scope_check CHECK (btrim(scope, E' \t\r\n') <> '' AND length(scope) <= 8192),
    CONSTRAINT denials_reason_check CHECK (octet_length(reason) <= 500)
);
CREATE INDEX IF NOT EXISTS denials_tenant_app_idx ON denials (account_id, tenant_id, app_id);
CREATE INDEX IF NOT EXISTS denials_app_idx ON denials (account_id, app_id);

-- The roles a key holds. Deleting a key drops its rows; a role is only
-- deleted once no key holds it (the store takes it from them first when
-- asked to force), checked at the end of the statement so that deleting
-- an account, which cascades to both, works.
CREATE TABLE IF NOT EXISTS key_roles (
    account_id text NOT NULL,
    key_id     text NOT NULL,
    role_id    text NOT NULL,
    CONSTRAINT key_roles_pkey PRIMARY KEY (account_id, key_id, role_id),
    CONSTRAINT key_roles_key_fkey FOREIGN KEY (account_id, key_id) REFERENCES keys (account_id, id) ON DELETE CASCADE,
    CONSTRAINT key_roles_role_fkey FOREIGN KEY (account_id, role_id) REFERENCES roles (account_id, id)
);
CREATE INDEX IF NOT EXISTS key_roles_role_idx ON key_roles (account_id, role_id);

-- Feed kinds.
ALTER TABLE key_changes DROP CONSTRAINT IF EXISTS key_changes_kind_check;
ALTER TABLE key_changes ADD CONSTRAINT key_changes_kind_check
    CHECK (kind IN ('key', 'app', 'tenant', 'role', 'denial'));

-- One feed row per role or denial written. A role revokes when its scope
-- changed or it is deleted (a key may lose what it allowed); a new role
-- revokes nothing and is recorded so that readers learn it. A denial
-- revokes when created or changed, not when deleted (that restores access).
CREATE OR REPLACE FUNCTION keygate_access_feed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    first_seq bigint;
    last_seq  bigint;
    kind      text := CASE TG_TABLE_NAME WHEN 'roles' THEN 'role' ELSE 'denial' END;
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM 1 FROM new_rows LIMIT 1;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
        PERFORM keygate_feed_lock();
        WITH c AS (
            INSERT INTO key_changes (account_id, kind, object_id, revokes)
            SELECT account_id, kind, id, kind = 'denial' FROM new_rows ORDER BY account_id, id
            RETURNING seq)
        SELECT min(seq), max(seq) INTO first_seq, last_seq FROM c;
    ELSIF TG_OP = 'UPDATE' THEN
        IF kind = 'role' THEN
            -- A role's description is not the data plane's.
            PERFORM 1 FROM old_rows o JOIN new_rows n ON n.account_id = o.account_id AND n.id = o.id
            WHERE n.scope IS DISTINCT FROM o.scope OR n.name IS DISTINCT FROM o.name LIMIT 1;
        ELSE
            PERFORM 1 FROM old_rows o JOIN new_rows n ON n.account_id = o.account_id AND n.id = o.id
            WHERE n.scope IS DISTINCT FROM o.scope OR n.reason IS DISTINCT FROM o.reason LIMIT 1;
        END IF;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
        PERFORM keygate_feed_lock();
        IF kind = 'role' THEN
            WITH c AS (
                INSERT INTO key_changes (account_id, kind, object_id, revokes)
                SELECT n.account_id, kind, n.id, n.scope IS DISTINCT FROM o.scope
                FROM old_rows o JOIN new_rows n ON n.account_id = o.account_id AND n.id = o.id
                WHERE n.scope IS DISTINCT FROM o.scope OR n.name IS DISTINCT FROM o.name
                ORDER BY n.account_id, n.id
                RETURNING seq)
            SELECT min(seq), max(seq) INTO first_seq, last_seq FROM c;
        ELSE
            WITH c AS (
                INSERT INTO key_changes (account_id, kind, object_id, revokes)
                SELECT n.account_id, kind, n.id, true
                FROM old_rows o JOIN new_rows n ON n.account_id = o.account_id AND n.id = o.id
                WHERE n.scope IS DISTINCT FROM o.scope OR n.reason IS DISTINCT FROM o.reason
                ORDER BY n.account_id, n.id
                RETURNING seq)
            SELECT min(seq), max(seq) INTO first_seq, last_seq FROM c;
        END IF;
    ELSE
        PERFORM 1 FROM old_rows LIMIT 1;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
        PERFORM keygate_feed_lock();
        WITH c AS (
            INSERT INTO key_changes (account_id, kind, object_id, revokes)
            SELECT account_id, kind, id, kind = 'role' FROM old_rows ORDER BY account_id, id
            RETURNING seq)
        SELECT min(seq), max(seq) INTO first_seq, last_seq FROM c;
    END IF;
    PERFORM keygate_feed_finish(first_seq, last_seq);
    RETURN NULL;
END
$$;

-- A key's roles are part of its compiled record: a row added or removed
-- is a change of that key (however it is written, manual SQL included).
-- Rows removed with their key (a cascade) name a key that is gone, which a
-- reader finds gone.
CREATE OR REPLACE FUNCTION keygate_key_roles_feed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    first_seq bigint;
    last_seq  bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM 1 FROM new_rows LIMIT 1;
    ELSE
        PERFORM 1 FROM old_rows LIMIT 1;
    END IF;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    PERFORM keygate_feed_lock();
    IF TG_OP = 'INSERT' THEN
        WITH c AS (
            INSERT INTO key_changes (account_id, kind, object_id, old_hashes, revokes)
            SELECT r.account_id, 'key', r.key_id, coalesce(array_remove(ARRAY[k.hash, k.previous_hash], NULL), '{}'), false
            FROM (SELECT DISTINCT account_id, key_id FROM new_rows) r
            LEFT JOIN keys k ON k.account_id = r.account_id AND k.id = r.key_id
            ORDER BY 1, 3
            RETURNING seq)
        SELECT min(seq), max(seq) INTO first_seq, last_seq FROM c;
    ELSE
        WITH c AS (
            INSERT INTO key_changes (account_id, kind, object_id, old_hashes, revokes)
            SELECT r.account_id, 'key', r.key_id, coalesce(array_remove(ARRAY[k.hash, k.previous_hash], NULL), '{}'), true
            FROM (SELECT DISTINCT account_id, key_id FROM old_rows) r
            LEFT JOIN keys k ON k.account_id = r.account_id AND k.id = r.key_id
            ORDER BY 1, 3
            RETURNING seq)
        SELECT min(seq), max(seq) INTO first_seq, last_seq FROM c;
    END IF;
    PERFORM keygate_feed_finish(first_seq, last_seq);
    RETURN NULL;
END
$$;

-- Quota counts of roles and denials, kept like those of 0004.
ALTER TABLE account_limits ADD COLUMN IF NOT EXISTS roles bigint NOT NULL DEFAULT 0;
ALTER TABLE account_limits ADD COLUMN IF NOT EXISTS denials bigint NOT NULL DEFAULT 0;

LOCK TABLE roles, denials, key_roles IN SHARE ROW EXCLUSIVE MODE;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['roles', 'denials'] LOOP
        -- <table>_count_* sort before <table>_feed_*: the account's limits
        -- row is locked before the feed lock.
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_count_insert', t);
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION keygate_count(%L)', t || '_count_insert', t, t);
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_count_delete', t);
        EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %I REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION keygate_count(%L)', t || '_count_delete', t, t);
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_count_move', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OF account_id ON %I
            FOR EACH ROW WHEN (OLD.account_id IS DISTINCT FROM NEW.account_id)
            EXECUTE FUNCTION keygate_refuse_account_move()', t || '_count_move', t);

        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_feed_insert', t);
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION keygate_access_feed()', t || '_feed_insert', t);
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_feed_update', t);
        EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %I REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION keygate_access_feed()', t || '_feed_update', t);
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_feed_delete', t);
        EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %I REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION keygate_access_feed()', t || '_feed_delete', t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['roles', 'denials', 'key_roles'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_refuse_truncate', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I
            FOR EACH STATEMENT EXECUTE FUNCTION keygate_refuse_truncate()', t || '_refuse_truncate', t);
    END LOOP;
END
$$;

DROP TRIGGER IF EXISTS key_roles_feed_insert ON key_roles;
CREATE TRIGGER key_roles_feed_insert AFTER INSERT ON key_roles
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION keygate_key_roles_feed();
DROP TRIGGER IF EXISTS key_roles_feed_delete ON key_roles;
CREATE TRIGGER key_roles_feed_delete AFTER DELETE ON key_roles
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION keygate_key_roles_feed();

UPDATE account_limits l SET
    roles   = (SELECT count(*) FROM roles r WHERE r.account_id = l.account_id),
    denials = (SELECT count(*) FROM denials d WHERE d.account_id = l.account_id);
