-- 0010: quotas (SPEC §12).
--
-- A tenant may have a monthly request quota (tenants.quota, a count), a
-- key a daily or monthly one (keys.quota, authz.Quota's text "N/day" or
-- "N/month"); NULL is none. Replicas admit against the allowed counts of
-- usage_hourly in the current period; the two partial indexes let them
-- sum a tenant's or a key's allowed requests since a period began without
-- reading the rest of the account's counts. Idempotent like the others.

ALTER TABLE tenants ADD COLUMN IF NOT EXISTS quota bigint
    CONSTRAINT tenants_quota_check CHECK (quota BETWEEN 1 AND 1000000000000000);

ALTER TABLE keys ADD COLUMN IF NOT EXISTS quota text
    CONSTRAINT keys_quota_check CHECK (quota ~ '^[1-9][0-9]{0,15}/(day|month)$');

CREATE INDEX IF NOT EXISTS usage_hourly_tenant_allowed ON usage_hourly (tenant_id, hour) INCLUDE (count)
    WHERE outcome = 'allowed';
CREATE INDEX IF NOT EXISTS usage_hourly_key_allowed ON usage_hourly (key_id, hour) INCLUDE (count)
    WHERE outcome = 'allowed';

-- A tenant's quota is part of its keys' records (row 10 reads it there):
-- changing it is a change of the tenant on the feed, like its name. Apps
-- have no quota column, hence the comparison through jsonb, which reads a
-- missing column as NULL. keygate_parents_feed of 0003, with the quota.
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
        OR to_jsonb(n)->'quota' IS DISTINCT FROM to_jsonb(o)->'quota'
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
            WHERE (n.name IS DISTINCT FROM o.name OR n.active IS DISTINCT FROM o.active
                    OR to_jsonb(n)->'quota' IS DISTINCT FROM to_jsonb(o)->'quota')
              AND EXISTS (SELECT 1 FROM keys k WHERE k.account_id = n.account_id AND k.%I = n.id)
            ORDER BY n.account_id, n.id
            RETURNING seq)
        SELECT min(seq), max(seq) FROM c$q$, kind || '_id')
    INTO first_seq, last_seq USING kind;
    PERFORM keygate_feed_finish(first_seq, last_seq);
    RETURN NULL;
END
$$;
