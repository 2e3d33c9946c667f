-- 0009: rate limits of keys and roles (SPEC §12).
--
-- A key or a role may carry a rate limit that keygate returns to Envoy in
-- its dynamic metadata (Envoy's global rate limit service enforces it):
-- stored as authz.RateLimit's text, "N/unit" (5/second), NULL for none.
-- Writing one is a change of the key (or role) on the feed like any
-- other. Idempotent like the others.

ALTER TABLE keys ADD COLUMN IF NOT EXISTS rate_limit text
    CONSTRAINT keys_rate_limit_check CHECK (rate_limit ~ '^[1-9][0-9]{0,9}/(second|minute|hour|day)$');

ALTER TABLE roles ADD COLUMN IF NOT EXISTS rate_limit text
    CONSTRAINT roles_rate_limit_check CHECK (rate_limit ~ '^[1-9][0-9]{0,9}/(second|minute|hour|day)$');

-- A role's rate limit is part of the keys holding it (their effective
-- limit): changing it is a change of the role on the feed, like its scope
-- or name (not a revocation). keygate_access_feed of 0006, with rate_limit.
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
            -- A role's description is not the data plane's; its rate limit
            -- is (keys holding it return it to Envoy, SPEC §12).
            PERFORM 1 FROM old_rows o JOIN new_rows n ON n.account_id = o.account_id AND n.id = o.id
            WHERE n.scope IS DISTINCT FROM o.scope OR n.name IS DISTINCT FROM o.name
                OR n.rate_limit IS DISTINCT FROM o.rate_limit LIMIT 1;
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
                OR n.rate_limit IS DISTINCT FROM o.rate_limit
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
