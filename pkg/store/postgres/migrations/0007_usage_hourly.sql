-- 0007: usage counts in hourly buckets (SPEC §12).
--
-- Every replica adds its deltas (INSERT ... ON CONFLICT DO UPDATE SET
-- count = count + excluded.count). The table is partitioned by month on
-- hour: keygate creates partitions ahead of time and drops whole ones past
-- --usage-retention. No foreign keys: counts outlive the keys they count,
-- and rows with key_id '' are counts a replica kept per account once its
-- memory bound was reached. Idempotent like the others.

CREATE TABLE IF NOT EXISTS usage_hourly (
    account_id text        NOT NULL,
    hour       timestamptz NOT NULL,
    tenant_id  text        NOT NULL DEFAULT '',
    app_id     text        NOT NULL DEFAULT '',
    key_id     text        NOT NULL DEFAULT '',
    service    text        NOT NULL DEFAULT '',
    operation  text        NOT NULL DEFAULT '',
    outcome    text        NOT NULL,
    count      bigint      NOT NULL,
    CONSTRAINT usage_hourly_pkey PRIMARY KEY (account_id, hour, key_id, service, operation, outcome, tenant_id, app_id),
    CONSTRAINT usage_hourly_count_check CHECK (count >= 0)
) PARTITION BY RANGE (hour);
