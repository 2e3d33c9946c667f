-- 0003: key ids unique within their account (SPEC §9), and a change feed
-- that records an app's or tenant's change once, not once per key (SPEC §10).
--
-- Idempotent like the others: each structural step checks the catalog
-- first, functions are replaced.

-- 1. Key ids per account. With keys_pkey on id alone, creating key id
-- "read" in one account told whether another account had it. Every
-- reference to a key by id now carries its account: key_usage and the
-- change feed.
ALTER TABLE key_usage ADD COLUMN IF NOT EXISTS account_id text;
ALTER TABLE key_changes ADD COLUMN IF NOT EXISTS account_id text NOT NULL DEFAULT '';

DO $$
BEGIN
    IF (SELECT cardinality(conkey) FROM pg_constraint
        WHERE conrelid = 'keys'::regclass AND conname = 'keys_pkey') = 1 THEN
        -- Ids are still unique across accounts here: each row names one key.
        -- A change of a key deleted before this migration keeps account ''
        -- (no key has it): a reader finds the key gone, as it is.
        UPDATE key_usage u SET account_id = k.account_id
        FROM keys k WHERE k.id = u.key_id AND u.account_id IS NULL;
        UPDATE key_changes c SET account_id = k.account_id
        FROM keys k WHERE k.id = c.key_id AND c.account_id = '';
        ALTER TABLE key_usage DROP CONSTRAINT IF EXISTS key_usage_key_fkey;
        ALTER TABLE keys DROP CONSTRAINT keys_pkey;
        ALTER TABLE keys ADD CONSTRAINT keys_pkey PRIMARY KEY (account_id, id);
    END IF;
    IF (SELECT cardinality(conkey) FROM pg_constraint
        WHERE conrelid = 'key_usage'::regclass AND conname = 'key_usage_pkey') = 1 THEN
        ALTER TABLE key_usage DROP CONSTRAINT key_usage_pkey;
        ALTER TABLE key_usage ALTER COLUMN account_id SET NOT NULL;
        ALTER TABLE key_usage ADD CONSTRAINT key_usage_pkey PRIMARY KEY (account_id, key_id);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
        WHERE conrelid = 'key_usage'::regclass AND conname = 'key_usage_key_fkey') THEN
        ALTER TABLE key_usage ADD CONSTRAINT key_usage_key_fkey FOREIGN KEY (account_id, key_id)
            REFERENCES keys (account_id, id) ON DELETE CASCADE;
    END IF;
    -- A feed row names a key, an app or a tenant: object_id, not key_id.
    IF EXISTS (SELECT 1 FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = 'key_changes' AND column_name = 'key_id') THEN
        ALTER TABLE key_changes RENAME COLUMN key_id TO object_id;
    END IF;
END
$$;

-- 2. One feed row per app or tenant change. kind says what object_id
-- names; revokes marks a change that may make keys less valid (a key
-- updated or deleted, an app or tenant deactivated) so that readers apply
-- it ahead of the bulk (renames, activations, new keys). Rows from before
-- this migration are all key rows and, to be safe, revoking.
ALTER TABLE key_changes ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'key';
ALTER TABLE key_changes ADD COLUMN IF NOT EXISTS revokes boolean NOT NULL DEFAULT true;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
        WHERE conrelid = 'key_changes'::regclass AND conname = 'key_changes_kind_check') THEN
        ALTER TABLE key_changes ADD CONSTRAINT key_changes_kind_check CHECK (kind IN ('key', 'app', 'tenant'));
    END IF;
END
$$;

-- Key rows: one per key written. An insert makes nothing less valid; any
-- update or delete may (it is cheap to treat them all as revoking: a
-- reader re-reads the key's current state whatever the change was).
CREATE OR REPLACE FUNCTION keygate_keys_feed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    first_seq bigint;
    last_seq  bigint;
    clash     text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM 1 FROM new_rows LIMIT 1;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
        PERFORM keygate_feed_lock();
        WITH c AS (
            INSERT INTO key_changes (account_id, kind, object_id, revokes)
            SELECT account_id, 'key', id, false FROM new_rows ORDER BY account_id, id
            RETURNING seq)
        SELECT min(seq), max(seq) INTO first_seq, last_seq FROM c;
    ELSIF TG_OP = 'UPDATE' THEN
        -- A row rewritten with identical values changed nothing.
        PERFORM 1 FROM old_rows o FULL JOIN new_rows n ON n.account_id = o.account_id AND n.id = o.id
        WHERE n IS DISTINCT FROM o LIMIT 1;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
        PERFORM keygate_feed_lock();
        WITH c AS (
            INSERT INTO key_changes (account_id, kind, object_id, old_hashes, revokes)
            SELECT coalesce(n.account_id, o.account_id), 'key', coalesce(n.id, o.id),
                array_remove(ARRAY[o.hash, o.previous_hash], NULL), true
            FROM old_rows o FULL JOIN new_rows n ON n.account_id = o.account_id AND n.id = o.id
            WHERE n IS DISTINCT FROM o
            ORDER BY 1, 3
            RETURNING seq)
        SELECT min(seq), max(seq) INTO first_seq, last_seq FROM c;
    ELSE
        PERFORM 1 FROM old_rows LIMIT 1;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
        PERFORM keygate_feed_lock();
        WITH c AS (
            INSERT INTO key_changes (account_id, kind, object_id, old_hashes, revokes)
            SELECT account_id, 'key', id, array_remove(ARRAY[hash, previous_hash], NULL), true
            FROM old_rows ORDER BY account_id, id
            RETURNING seq)
        SELECT min(seq), max(seq) INTO first_seq, last_seq FROM c;
    END IF;

    IF TG_OP <> 'DELETE' THEN
        -- The unique indexes keep current digests apart and previous digests
        -- apart; this keeps a key's current digest from being another key's
        -- previous one, so that a lookup by digest finds one key at most.
        -- Checked under the feed lock, which every key writer takes.
        SELECT n.id INTO clash FROM new_rows n
        JOIN keys k ON k.previous_digest = n.digest AND (k.account_id, k.id) <> (n.account_id, n.id)
        UNION ALL
        SELECT n.id FROM new_rows n
        JOIN keys k ON k.digest = n.previous_digest AND (k.account_id, k.id) <> (n.account_id, n.id)
        LIMIT 1;
        IF clash IS NOT NULL THEN
            RAISE EXCEPTION 'a hash of key % is already in use by another key', clash
                USING ERRCODE = 'unique_violation', CONSTRAINT = 'keys_digest_key';
        END IF;
    END IF;

    PERFORM keygate_feed_finish(first_seq, last_seq);
    RETURN NULL;
END
$$;

-- Parent rows: one per app or tenant whose name or active flag changed and
-- that has keys, whatever their number. Deletes need no row here: they
-- cascade to the keys, whose own trigger records them.
CREATE OR REPLACE FUNCTION keygate_parents_feed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    first_seq bigint;
    last_seq  bigint;
    kind      text := CASE TG_TABLE_NAME WHEN 'apps' THEN 'app' ELSE 'tenant' END;
BEGIN
    PERFORM 1 FROM old_rows o
    JOIN new_rows n ON n.account_id = o.account_id AND n.id = o.id
    WHERE n.name IS DISTINCT FROM o.name OR n.active IS DISTINCT FROM o.active
    LIMIT 1;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    PERFORM keygate_feed_lock();
    -- Dynamic only in the keys column (app_id or tenant_id), so that the
    -- EXISTS uses that column's index; transition tables are visible here.
    EXECUTE format($q$
        WITH c AS (
            INSERT INTO key_changes (account_id, kind, object_id, revokes)
            SELECT n.account_id, $1, n.id, o.active AND NOT n.active
            FROM old_rows o
            JOIN new_rows n ON n.account_id = o.account_id AND n.id = o.id
            WHERE (n.name IS DISTINCT FROM o.name OR n.active IS DISTINCT FROM o.active)
              AND EXISTS (SELECT 1 FROM keys k WHERE k.account_id = n.account_id AND k.%I = n.id)
            ORDER BY n.account_id, n.id
            RETURNING seq)
        SELECT min(seq), max(seq) FROM c$q$, kind || '_id')
    INTO first_seq, last_seq USING kind;
    PERFORM keygate_feed_finish(first_seq, last_seq);
    RETURN NULL;
END
$$;
