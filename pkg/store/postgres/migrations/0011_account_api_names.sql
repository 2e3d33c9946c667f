-- 0011: the Account API's operations are named as their GraphQL fields
-- (SPEC §14): getApp → app, listApps → apps, getTenant → tenant,
-- listTenants → tenants, getKey → key, listKeys → keys, listAuditEvents →
-- auditEvents. Stored scopes of keys and roles that use the earlier names
-- are rewritten so that they allow and deny what they did before.
--
-- The rewrite goes through the tables' UPDATE triggers (0002, 0006, 0009),
-- which write a change-feed row per changed key or role and notify: every
-- running replica reloads those keys, as after an Account API update.
--
-- keygate_canonical_scope is account.CanonicalScope in SQL; a test
-- (pkg/store/postgres) runs both on the same table of cases.

CREATE OR REPLACE FUNCTION keygate_scope_segment_matches(seg text, name text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN right(seg, 1) = '*' THEN starts_with(name, left(seg, -1)) ELSE seg = name END
$$;

CREATE OR REPLACE FUNCTION keygate_canonical_scope(s text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    renames constant text[] := ARRAY[
        'getApp', 'app', 'listApps', 'apps',
        'getTenant', 'tenant', 'listTenants', 'tenants',
        'getKey', 'key', 'listKeys', 'keys',
        'listAuditEvents', 'auditEvents'];
    trimmed text;
    fields  text[];
    result  text[] := '{}';
    added   text[] := '{}';
    changed boolean := false;
    p text; neg text; pat text; segs text[]; svc text; kind text; op text;
    renamed text; prefix text; old_name text; new_name text; hit boolean; a text;
BEGIN
    -- Fields as strings.Fields splits them: runs of white space.
    trimmed := regexp_replace(s, '^[[:space:]]+|[[:space:]]+$', '', 'g');
    IF trimmed IS NULL OR trimmed = '' THEN
        RETURN s;
    END IF;
    fields := regexp_split_to_array(trimmed, '[[:space:]]+');
    FOREACH p IN ARRAY fields LOOP
        neg := '';
        pat := p;
        IF left(pat, 1) = '!' THEN
            neg := '!';
            pat := substr(pat, 2);
        END IF;
        segs := string_to_array(pat, ':');
        IF array_length(segs, 1) IS DISTINCT FROM 3 OR NOT keygate_scope_segment_matches(segs[1], 'account-api') THEN
            result := result || p;
            CONTINUE;
        END IF;
        svc := segs[1];
        kind := segs[2];
        op := segs[3];
        renamed := p;
        FOR i IN 1 .. array_length(renames, 1) / 2 LOOP
            old_name := renames[2 * i - 1];
            new_name := renames[2 * i];
            IF right(op, 1) = '*' THEN
                prefix := left(op, -1);
                hit := prefix <> '' AND starts_with(old_name, prefix) AND NOT starts_with(new_name, prefix);
            ELSE
                hit := op = old_name;
            END IF;
            IF NOT hit THEN
                CONTINUE;
            END IF;
            IF svc = 'account-api' AND op = old_name THEN
                renamed := neg || svc || ':' || kind || ':' || new_name;
            ELSE
                added := added || (neg || 'account-api:' || kind || ':' || new_name);
            END IF;
        END LOOP;
        changed := changed OR renamed <> p;
        result := result || renamed;
    END LOOP;
    FOREACH a IN ARRAY added LOOP
        IF NOT a = ANY (result) THEN
            result := result || a;
            changed := true;
        END IF;
    END LOOP;
    IF NOT changed THEN
        RETURN s;
    END IF;
    RETURN array_to_string(result, ' ');
END
$$;

UPDATE keys SET scope = keygate_canonical_scope(scope)
WHERE scope <> keygate_canonical_scope(scope);

UPDATE roles SET scope = keygate_canonical_scope(scope)
WHERE scope <> keygate_canonical_scope(scope);
