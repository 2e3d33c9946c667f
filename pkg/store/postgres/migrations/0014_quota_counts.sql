-- 0014: each quota subject's total per period (SPEC §12), so that replicas
-- read only what other replicas changed.
--
-- One row per tenant or key with a quota and period: the fleet's allowed
-- requests in it. Each usage flush adds its allowed deltas here in the
-- transaction that adds its usage_hourly rows (a row begun by a flush is
-- the subject's allowed rows of usage_hourly in the period, this flush's
-- included, so a quota set mid-period counts what came before it). writer
-- is the replica that wrote the row last and xid its transaction: a
-- replica's periodic sync reads the rows of the current periods that other
-- writers changed since the oldest transaction still running at its last
-- read (xid >= that snapshot's xmin).
--
-- xid is not indexed: a flush updates every total it counted, and an
-- index on a column every update changes makes each update a new tuple
-- in every index (measured: 100,000 totals added in 1.1-1.3 s with it,
-- 0.4-0.7 s without, as heap-only updates, hence the fillfactor). Instead
-- the key leads with the period, so that the current periods' rows are
-- one range, and quota_writers says whether any other writer wrote since
-- a watermark at all: alone, a replica's sync reads one small table.
-- Rows of periods long ended are deleted by the usage retention.
-- Idempotent like the others.

CREATE TABLE IF NOT EXISTS quota_counts (
    period_start timestamptz NOT NULL,
    period       text        NOT NULL CONSTRAINT quota_counts_period_check CHECK (period IN ('day', 'month')),
    account_id   text        NOT NULL,
    tenant       boolean     NOT NULL,
    subject_id   text        NOT NULL,
    used         bigint      NOT NULL CONSTRAINT quota_counts_used_check CHECK (used >= 0),
    writer       text        NOT NULL,
    xid          xid8        NOT NULL DEFAULT pg_current_xact_id(),
    CONSTRAINT quota_counts_pkey PRIMARY KEY (period_start, period, account_id, tenant, subject_id)
) WITH (fillfactor = 70);

-- Each writer's last flush that added to quota_counts.
CREATE TABLE IF NOT EXISTS quota_writers (
    writer     text        NOT NULL PRIMARY KEY,
    xid        xid8        NOT NULL DEFAULT pg_current_xact_id(),
    written_at timestamptz NOT NULL DEFAULT now()
);

-- A total counts the allowed requests of the period while the subject had
-- a quota of that period. When a key's quota is removed or changes period,
-- or a tenant's is removed, its rows are deleted: a quota set again begins
-- anew from usage_hourly, which counted the requests in between too.
CREATE OR REPLACE FUNCTION keygate_quota_counts_forget() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'keys' THEN
        DELETE FROM quota_counts
        WHERE account_id = NEW.account_id AND NOT tenant AND subject_id = NEW.id
          AND period IS DISTINCT FROM split_part(NEW.quota, '/', 2);
    ELSIF NEW.quota IS NULL THEN
        DELETE FROM quota_counts WHERE account_id = NEW.account_id AND tenant AND subject_id = NEW.id;
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS keys_quota_counts_forget ON keys;
CREATE TRIGGER keys_quota_counts_forget AFTER UPDATE OF quota ON keys
    FOR EACH ROW WHEN (OLD.quota IS DISTINCT FROM NEW.quota) EXECUTE FUNCTION keygate_quota_counts_forget();
DROP TRIGGER IF EXISTS tenants_quota_counts_forget ON tenants;
CREATE TRIGGER tenants_quota_counts_forget AFTER UPDATE OF quota ON tenants
    FOR EACH ROW WHEN (OLD.quota IS DISTINCT FROM NEW.quota) EXECUTE FUNCTION keygate_quota_counts_forget();
