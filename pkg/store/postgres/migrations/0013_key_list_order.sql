-- 0013: the keys list's sorts and name search (issue #21, the console).
--
-- ListKeys sorts by creation (keys_list_idx of 0001), name, expiry or last
-- use, each with the id after it for keyset pagination; these indexes let
-- the first page of each sort (either direction: indexes are read
-- backwards) read only its rows. A name sorts by lower(name) in byte order
-- (COLLATE "C": as Go compares strings), keys that never expire sort as
-- expiring at infinity. Sorting by last use reads the used keys through
-- key_usage's index and the never used ones in creation order.
--
-- The name search (lower(name) LIKE '%text%') is served by a trigram
-- index where the pg_trgm extension can be installed (it ships with
-- PostgreSQL's contrib and is trusted: the database's owner may create
-- it); without it the search still works, reading the account's keys.
-- Idempotent like the others.

CREATE INDEX IF NOT EXISTS keys_name_order_idx ON keys (account_id, (lower(name) COLLATE "C"), id);
CREATE INDEX IF NOT EXISTS keys_expires_order_idx ON keys (account_id, (coalesce(expires_at, 'infinity'::timestamptz)), id);
CREATE INDEX IF NOT EXISTS key_usage_last_used_idx ON key_usage (account_id, last_used_at, key_id);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS pg_trgm;
        EXCEPTION WHEN insufficient_privilege OR feature_not_supported THEN
            RAISE NOTICE 'pg_trgm not installed (%): the keys name search reads without an index', SQLERRM;
        END;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        EXECUTE 'CREATE INDEX IF NOT EXISTS keys_name_trgm_idx ON keys USING gin (lower(name) gin_trgm_ops)';
    END IF;
END
$$;
