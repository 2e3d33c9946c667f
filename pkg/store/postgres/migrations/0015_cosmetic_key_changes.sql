-- 0015: a key update that changes only what no decision reads (name,
-- description, group; updated_at moves with any write) is not a
-- revocation (SPEC §10, issue 15). Until now every key update was marked
-- revoking, so a bulk UpdateKeys of thousands of descriptions sat in the
-- same first pass as another account's deactivation, and a replica's
-- look-ahead for revocations (pkg/cache) would have had to wade through
-- them. Such rows are now revokes = false: replicas apply them with the
-- bulk, after the revocations.
--
-- Fail closed: a row is non-revoking only when every other column is
-- equal, compared as the whole row minus those four, so a column added
-- later counts as one that decides until it is named here; when at least
-- one of name, description and group changed (a row only touched stands
-- for a change of the roles it holds). A change of the roles a key holds
-- writes its own rows (key_roles' trigger), revoking when a role goes.

CREATE OR REPLACE FUNCTION keygate_key_decides(r jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$ SELECT r - ARRAY['name', 'description', 'grp', 'updated_at'] $$;

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
                array_remove(ARRAY[o.hash, o.previous_hash], NULL),
                n IS NULL OR o IS NULL OR keygate_key_decides(to_jsonb(n)) IS DISTINCT FROM keygate_key_decides(to_jsonb(o))
                -- A row touched with none of the cosmetic columns changed
                -- marks a change made elsewhere that may narrow access (a
                -- forced role delete touches the keys that held the role).
                OR (n.name IS NOT DISTINCT FROM o.name AND n.description IS NOT DISTINCT FROM o.description
                    AND n.grp IS NOT DISTINCT FROM o.grp)
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
