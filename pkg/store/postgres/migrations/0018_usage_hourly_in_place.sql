-- 0018: usage_hourly's counts updated in place (heap-only updates).
--
-- Every usage flush adds to the current hour's row of each key it counted:
-- 100,000 active keys are 100,000 updates every 10 s. The partial indexes
-- of 0010 carried count (INCLUDE), so every such update changed an indexed
-- column, and PostgreSQL wrote a new entry for it in each of the table's
-- three indexes (the 8-column primary key among them) and a new tuple on
-- another page, leaving the old ones for vacuum. Without count in an
-- index, and with room on the row's page for its new version, the update
-- is heap-only: no index entry, and the page prunes its own dead versions
-- at the next flush.
--
-- The room: a flush updates every row of a page in one transaction, so
-- until it commits the page holds each row twice (its old and its new
-- version). Pages filled to at most 45% leave that room, with some for
-- line pointers and longer rows. Measured on 100,000 rows of one hour,
-- twelve flushes of all of them (PostgreSQL 15, nothing else running):
--   before: 1.31-1.76 s a flush, 0% heap-only, afterwards 124 MB of
--           indexes and 164 MB of table;
--   fillfactor 70: 0.60-1.40 s, 88% heap-only (rows that did not fit
--           moved), 25 MB and 43 MB;
--   fillfactor 45: 0.62-0.98 s, 100% heap-only, 17 MB and 28 MB (as
--           after the first flush).
-- The price is that an hour's rows, once no longer updated, stay on pages
-- filled to 45% (about 280 bytes a row against 180 packed).
--
-- The sums of a tenant's or a key's allowed rows (a quota total begun,
-- usageSum) still find the rows through these indexes and now read count
-- from the table; they run when a total is begun, not on every flush.
--
-- The indexes are rebuilt on every partition (writes wait meanwhile; a
-- replica's usage counts stay pending in memory and are written at its
-- next flush). The fillfactor applies to partitions created from now on
-- (ensureUsagePartitions) and to the pages existing partitions fill from
-- now on.
--
-- quota_counts (0014) gets the same room, for the same reason: each flush
-- updates every total it counted once. At its fillfactor of 70, 100,000
-- totals updated twelve times: 0.55-1.10 s a flush, 88% heap-only, 12 MB
-- of index and 34 MB of table afterwards; at 45: 0.51-0.59 s, 100%,
-- 6 MB and 23 MB. A period's totals are new rows, so they take the new
-- fillfactor from the next period on. Idempotent like the others.

DROP INDEX IF EXISTS usage_hourly_tenant_allowed;
DROP INDEX IF EXISTS usage_hourly_key_allowed;
CREATE INDEX IF NOT EXISTS usage_hourly_tenant_allowed ON usage_hourly (tenant_id, hour)
    WHERE outcome = 'allowed';
CREATE INDEX IF NOT EXISTS usage_hourly_key_allowed ON usage_hourly (key_id, hour)
    WHERE outcome = 'allowed';

DO $$
DECLARE
    part regclass;
BEGIN
    FOR part IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'usage_hourly'::regclass LOOP
        EXECUTE format('ALTER TABLE %s SET (fillfactor = 45)', part);
    END LOOP;
END
$$;

ALTER TABLE quota_counts SET (fillfactor = 45);
