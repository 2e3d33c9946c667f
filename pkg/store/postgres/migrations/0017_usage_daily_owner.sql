-- 0017: a daily rollup of usage_hourly by owner, for the console's and
-- the API's daily and monthly usage by tenant, app and outcome.
--
-- One row per account, UTC day, tenant, app and outcome: the sum of the
-- usage_hourly rows of those hours (no key, service or operation, so a
-- day of a busy tenant is a handful of rows where usage_hourly holds one
-- per key, operation, outcome and hour). Every usage flush adds its
-- deltas here, summed in memory, in the transaction that adds them to
-- usage_hourly; the usage retention deletes the rows of the months whose
-- usage_hourly partitions it drops. A query that filters and groups by
-- these fields only, daily or monthly, reads whole days here and only the
-- hours outside its range on its first and last day from usage_hourly.
--
-- keygate_usage_daily_rebuild recomputes the rollup of the days that
-- overlap [since, until) (NULL: unbounded), of one account or (NULL)
-- every account, from usage_hourly, holding
-- off flushes meanwhile: this migration fills it from the rows already
-- there, and it repairs days whose hourly rows were written around the
-- flush (replicas of an older version during a rolling upgrade, rows
-- loaded by hand). Idempotent like the others.

CREATE TABLE IF NOT EXISTS usage_daily_owner (
    account_id text        NOT NULL,
    day        timestamptz NOT NULL,
    tenant_id  text        NOT NULL DEFAULT '',
    app_id     text        NOT NULL DEFAULT '',
    outcome    text        NOT NULL,
    count      bigint      NOT NULL,
    CONSTRAINT usage_daily_owner_pkey PRIMARY KEY (account_id, day, tenant_id, app_id, outcome),
    CONSTRAINT usage_daily_owner_count_check CHECK (count >= 0),
    CONSTRAINT usage_daily_owner_day_check CHECK (day = date_trunc('day', day, 'UTC'))
) WITH (fillfactor = 70); -- every flush updates the day's rows: room for heap-only updates

-- A tenant's or an app's days without the account's other owners.
CREATE INDEX IF NOT EXISTS usage_daily_owner_tenant ON usage_daily_owner (account_id, tenant_id, day);
CREATE INDEX IF NOT EXISTS usage_daily_owner_app ON usage_daily_owner (account_id, app_id, day);

DROP FUNCTION IF EXISTS keygate_usage_daily_rebuild(timestamptz, timestamptz);
CREATE OR REPLACE FUNCTION keygate_usage_daily_rebuild(since timestamptz, until timestamptz, account text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    lo timestamptz := date_trunc('day', since, 'UTC');
    -- The end of the day of until's last instant (24 hours: '1 day'
    -- would follow the session's time zone).
    hi timestamptz := date_trunc('day', until - interval '1 microsecond', 'UTC') + interval '24 hours';
    n  bigint;
BEGIN
    -- Flushes take ROW EXCLUSIVE on usage_hourly before they add to the
    -- rollup: SHARE waits for those running and holds off the next.
    LOCK TABLE usage_hourly IN SHARE MODE;
    LOCK TABLE usage_daily_owner IN EXCLUSIVE MODE;
    DELETE FROM usage_daily_owner WHERE (lo IS NULL OR day >= lo) AND (hi IS NULL OR day < hi)
        AND (account IS NULL OR account_id = account);
    INSERT INTO usage_daily_owner (account_id, day, tenant_id, app_id, outcome, count)
    SELECT account_id, date_trunc('day', hour, 'UTC'), tenant_id, app_id, outcome, sum(count)
    FROM usage_hourly
    WHERE (lo IS NULL OR hour >= lo) AND (hi IS NULL OR hour < hi)
        AND (account IS NULL OR account_id = account)
    GROUP BY 1, 2, 3, 4, 5;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

SELECT keygate_usage_daily_rebuild(NULL, NULL);
