-- 0004: per-account quotas on stored objects (SPEC §10).
--
-- One account_limits row per account holds the operator's overrides (NULL:
-- serve's --max-*-per-account default) and the counts of what the account
-- holds. Triggers keep the counts exact for every writer, manual SQL and
-- cascading deletes included, so a create never counts rows: it locks the
-- account's row (SELECT … FOR UPDATE), compares, inserts; a concurrent
-- create of the same account waits for that commit and sees its count.
-- Roles and denials get their limits now; their tables, counts and
-- enforcement come with them.
--
-- The counting triggers are named keys_count_* (and so on), which sorts
-- before the *_feed_* triggers: a statement locks the account's row before
-- the feed lock, the same order as the store's own writes, so the two
-- locks are never taken in opposite orders.

CREATE TABLE IF NOT EXISTS account_limits (
    account_id  text   NOT NULL,
    max_keys    bigint,
    max_apps    bigint,
    max_tenants bigint,
    max_roles   bigint,
    max_denials bigint,
    keys        bigint NOT NULL DEFAULT 0,
    apps        bigint NOT NULL DEFAULT 0,
    tenants     bigint NOT NULL DEFAULT 0,
    CONSTRAINT account_limits_pkey PRIMARY KEY (account_id),
    CONSTRAINT account_limits_account_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE,
    CONSTRAINT account_limits_max_check CHECK (
        coalesce(max_keys, 0) >= 0 AND coalesce(max_apps, 0) >= 0 AND coalesce(max_tenants, 0) >= 0
        AND coalesce(max_roles, 0) >= 0 AND coalesce(max_denials, 0) >= 0)
);

-- Writers wait here until the counts below are complete: a row inserted
-- meanwhile is counted by its trigger after this transaction commits.
LOCK TABLE accounts, apps, tenants, keys IN SHARE ROW EXCLUSIVE MODE;

CREATE OR REPLACE FUNCTION keygate_accounts_limits_row() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO account_limits (account_id) SELECT id FROM new_rows ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

-- Adds sign × the rows of each account in the transition table to the
-- column TG_ARGV[0] ('keys', 'apps' or 'tenants').
CREATE OR REPLACE FUNCTION keygate_count() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        EXECUTE format('UPDATE account_limits l SET %1$I = l.%1$I + c.n
            FROM (SELECT account_id, count(*) AS n FROM new_rows GROUP BY account_id) c
            WHERE l.account_id = c.account_id', TG_ARGV[0]);
    ELSE
        EXECUTE format('UPDATE account_limits l SET %1$I = l.%1$I - c.n
            FROM (SELECT account_id, count(*) AS n FROM old_rows GROUP BY account_id) c
            WHERE l.account_id = c.account_id', TG_ARGV[0]);
    END IF;
    RETURN NULL;
END
$$;

-- Moving a row to another account would leave both counts wrong (and
-- nothing keygate does moves one).
CREATE OR REPLACE FUNCTION keygate_refuse_account_move() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows cannot move to another account', TG_TABLE_NAME
        USING ERRCODE = 'feature_not_supported';
END
$$;

DROP TRIGGER IF EXISTS accounts_limits_row ON accounts;
CREATE TRIGGER accounts_limits_row AFTER INSERT ON accounts
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION keygate_accounts_limits_row();

-- <table>_count_insert, <table>_count_delete and <table>_count_move on
-- keys, apps and tenants.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['keys', 'apps', 'tenants'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_count_insert', t);
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION keygate_count(%L)', t || '_count_insert', t, t);
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_count_delete', t);
        EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %I REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION keygate_count(%L)', t || '_count_delete', t, t);
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_count_move', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OF account_id ON %I
            FOR EACH ROW WHEN (OLD.account_id IS DISTINCT FROM NEW.account_id)
            EXECUTE FUNCTION keygate_refuse_account_move()', t || '_count_move', t);
    END LOOP;
END
$$;

-- The counts of what exists already (the triggers count what comes next).
INSERT INTO account_limits (account_id) SELECT id FROM accounts ON CONFLICT DO NOTHING;
UPDATE account_limits l SET
    keys    = (SELECT count(*) FROM keys k WHERE k.account_id = l.account_id),
    apps    = (SELECT count(*) FROM apps a WHERE a.account_id = l.account_id),
    tenants = (SELECT count(*) FROM tenants t WHERE t.account_id = l.account_id);

DROP TRIGGER IF EXISTS account_limits_refuse_truncate ON account_limits;
CREATE TRIGGER account_limits_refuse_truncate BEFORE TRUNCATE ON account_limits
    FOR EACH STATEMENT EXECUTE FUNCTION keygate_refuse_truncate();
