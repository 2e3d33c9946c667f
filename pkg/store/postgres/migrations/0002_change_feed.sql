-- 0002: the key change feed, fed by triggers so that every writer feeds it,
-- manual SQL included.
--
-- Each change to a key (and each change of an app's or tenant's name or
-- active flag, once per key of it) appends a key_changes row and notifies
-- channel keygate_changes with the new seq. Readers keep a watermark (the
-- highest seq they applied) and read seq > watermark. That is only safe if
-- no seq can become visible after a higher one: the trigger takes a
-- transaction-level advisory lock before it draws sequence numbers, so the
-- writer that drew seq n commits (or rolls back) before any other writer can
-- draw n+1. Commit order is seq order; a gap is a rolled-back writer, never
-- a late one.

CREATE TABLE IF NOT EXISTS key_changes (
    seq        bigserial   NOT NULL,
    key_id     text        NOT NULL,
    -- The hashes under which the key was valid before the change (current
    -- and previous); empty for a new key.
    old_hashes text[]      NOT NULL DEFAULT '{}',
    at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT key_changes_pkey PRIMARY KEY (seq)
);
CREATE INDEX IF NOT EXISTS key_changes_at_idx ON key_changes (at);

-- The highest seq pruning has removed: a reader whose watermark is below it
-- has missed changes and must load everything again.
CREATE TABLE IF NOT EXISTS key_changes_pruned (
    singleton   boolean NOT NULL DEFAULT true,
    through_seq bigint  NOT NULL DEFAULT 0,
    CONSTRAINT key_changes_pruned_pkey PRIMARY KEY (singleton),
    CONSTRAINT key_changes_pruned_singleton_check CHECK (singleton)
);
INSERT INTO key_changes_pruned (singleton) VALUES (true) ON CONFLICT DO NOTHING;

-- Serialises feed writers from their first sequence number to their commit.
CREATE OR REPLACE FUNCTION keygate_feed_lock() RETURNS void
LANGUAGE sql AS $$ SELECT pg_advisory_xact_lock(118091843724644) $$;

-- Prunes now and then, and notifies listeners. Called with the lock held.
CREATE OR REPLACE FUNCTION keygate_feed_finish(first_seq bigint, last_seq bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    pruned bigint;
BEGIN
    IF last_seq IS NULL THEN
        RETURN;
    END IF;
    -- Whenever a writer crosses a multiple of 1000, drop rows older than a
    -- day, never the newest one (LoadAll reports max(seq) as its watermark).
    IF last_seq / 1000 <> (first_seq - 1) / 1000 THEN
        WITH gone AS (
            DELETE FROM key_changes
            WHERE at < clock_timestamp() - interval '1 day' AND seq < first_seq
            RETURNING seq)
        SELECT max(seq) INTO pruned FROM gone;
        IF pruned IS NOT NULL THEN
            UPDATE key_changes_pruned SET through_seq = greatest(through_seq, pruned);
        END IF;
    END IF;
    PERFORM pg_notify('keygate_changes', last_seq::text);
END
$$;

-- Statement-level, with transition tables: one lock, one notification per
-- statement, however many rows (a COPY of a million keys included).
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
            INSERT INTO key_changes (key_id)
            SELECT id FROM new_rows ORDER BY id
            RETURNING seq)
        SELECT min(seq), max(seq) INTO first_seq, last_seq FROM c;
    ELSIF TG_OP = 'UPDATE' THEN
        -- A row rewritten with identical values changed nothing.
        PERFORM 1 FROM old_rows o FULL JOIN new_rows n ON n.id = o.id
        WHERE n IS DISTINCT FROM o LIMIT 1;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
        PERFORM keygate_feed_lock();
        WITH c AS (
            INSERT INTO key_changes (key_id, old_hashes)
            SELECT coalesce(n.id, o.id), array_remove(ARRAY[o.hash, o.previous_hash], NULL)
            FROM old_rows o FULL JOIN new_rows n ON n.id = o.id
            WHERE n IS DISTINCT FROM o
            ORDER BY 1
            RETURNING seq)
        SELECT min(seq), max(seq) INTO first_seq, last_seq FROM c;
    ELSE
        PERFORM 1 FROM old_rows LIMIT 1;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
        PERFORM keygate_feed_lock();
        WITH c AS (
            INSERT INTO key_changes (key_id, old_hashes)
            SELECT id, array_remove(ARRAY[hash, previous_hash], NULL) FROM old_rows ORDER BY id
            RETURNING seq)
        SELECT min(seq), max(seq) INTO first_seq, last_seq FROM c;
    END IF;

    IF TG_OP <> 'DELETE' THEN
        -- The unique indexes keep current digests apart and previous digests
        -- apart; this keeps a key's current digest from being another key's
        -- previous one, so that a lookup by digest finds one key at most.
        -- Checked under the feed lock, which every key writer takes.
        SELECT n.id INTO clash FROM new_rows n
        JOIN keys k ON k.previous_digest = n.digest AND k.id <> n.id
        UNION ALL
        SELECT n.id FROM new_rows n
        JOIN keys k ON k.digest = n.previous_digest AND k.id <> n.id
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

-- An app's or tenant's name and active flag are part of its keys' compiled
-- records. Deletes need no trigger here: they cascade to the keys, whose
-- own trigger records them.
CREATE OR REPLACE FUNCTION keygate_parents_feed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    first_seq bigint;
    last_seq  bigint;
BEGIN
    IF TG_TABLE_NAME = 'apps' THEN
        PERFORM 1 FROM old_rows o
        JOIN new_rows n ON n.account_id = o.account_id AND n.id = o.id
        JOIN keys k ON k.account_id = n.account_id AND k.app_id = n.id
        WHERE n.name IS DISTINCT FROM o.name OR n.active IS DISTINCT FROM o.active
        LIMIT 1;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
        PERFORM keygate_feed_lock();
        WITH c AS (
            INSERT INTO key_changes (key_id, old_hashes)
            SELECT k.id, array_remove(ARRAY[k.hash, k.previous_hash], NULL)
            FROM old_rows o
            JOIN new_rows n ON n.account_id = o.account_id AND n.id = o.id
            JOIN keys k ON k.account_id = n.account_id AND k.app_id = n.id
            WHERE n.name IS DISTINCT FROM o.name OR n.active IS DISTINCT FROM o.active
            ORDER BY k.id
            RETURNING seq)
        SELECT min(seq), max(seq) INTO first_seq, last_seq FROM c;
    ELSE
        PERFORM 1 FROM old_rows o
        JOIN new_rows n ON n.account_id = o.account_id AND n.id = o.id
        JOIN keys k ON k.account_id = n.account_id AND k.tenant_id = n.id
        WHERE n.name IS DISTINCT FROM o.name OR n.active IS DISTINCT FROM o.active
        LIMIT 1;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
        PERFORM keygate_feed_lock();
        WITH c AS (
            INSERT INTO key_changes (key_id, old_hashes)
            SELECT k.id, array_remove(ARRAY[k.hash, k.previous_hash], NULL)
            FROM old_rows o
            JOIN new_rows n ON n.account_id = o.account_id AND n.id = o.id
            JOIN keys k ON k.account_id = n.account_id AND k.tenant_id = n.id
            WHERE n.name IS DISTINCT FROM o.name OR n.active IS DISTINCT FROM o.active
            ORDER BY k.id
            RETURNING seq)
        SELECT min(seq), max(seq) INTO first_seq, last_seq FROM c;
    END IF;
    PERFORM keygate_feed_finish(first_seq, last_seq);
    RETURN NULL;
END
$$;

-- TRUNCATE fires no row or statement DELETE triggers: refuse it on every
-- table whose rows reach the feed.
CREATE OR REPLACE FUNCTION keygate_refuse_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'TRUNCATE % would bypass the key change feed; use DELETE', TG_TABLE_NAME
        USING ERRCODE = 'feature_not_supported';
END
$$;

DROP TRIGGER IF EXISTS keys_feed_insert ON keys;
CREATE TRIGGER keys_feed_insert AFTER INSERT ON keys
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION keygate_keys_feed();
DROP TRIGGER IF EXISTS keys_feed_update ON keys;
CREATE TRIGGER keys_feed_update AFTER UPDATE ON keys
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION keygate_keys_feed();
DROP TRIGGER IF EXISTS keys_feed_delete ON keys;
CREATE TRIGGER keys_feed_delete AFTER DELETE ON keys
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION keygate_keys_feed();

DROP TRIGGER IF EXISTS apps_feed_update ON apps;
CREATE TRIGGER apps_feed_update AFTER UPDATE ON apps
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION keygate_parents_feed();
DROP TRIGGER IF EXISTS tenants_feed_update ON tenants;
CREATE TRIGGER tenants_feed_update AFTER UPDATE ON tenants
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION keygate_parents_feed();

DROP TRIGGER IF EXISTS accounts_refuse_truncate ON accounts;
CREATE TRIGGER accounts_refuse_truncate BEFORE TRUNCATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION keygate_refuse_truncate();
DROP TRIGGER IF EXISTS apps_refuse_truncate ON apps;
CREATE TRIGGER apps_refuse_truncate BEFORE TRUNCATE ON apps
    FOR EACH STATEMENT EXECUTE FUNCTION keygate_refuse_truncate();
DROP TRIGGER IF EXISTS tenants_refuse_truncate ON tenants;
CREATE TRIGGER tenants_refuse_truncate BEFORE TRUNCATE ON tenants
    FOR EACH STATEMENT EXECUTE FUNCTION keygate_refuse_truncate();
DROP TRIGGER IF EXISTS keys_refuse_truncate ON keys;
CREATE TRIGGER keys_refuse_truncate BEFORE TRUNCATE ON keys
    FOR EACH STATEMENT EXECUTE FUNCTION keygate_refuse_truncate();
