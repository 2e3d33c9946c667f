-- 0001: accounts, apps, tenants, keys, last-used times and the audit log.
--
-- Every statement is idempotent (IF NOT EXISTS, OR REPLACE) so that the file
-- can be applied again on a database that already has it. The CHECK
-- constraints enforce SPEC §1 so that no client, not even manual SQL, can
-- store a key that keygate could not serve; the store maps a violated
-- constraint's name back to the field it guards.

CREATE TABLE IF NOT EXISTS accounts (
    id         text        NOT NULL DEFAULT gen_random_uuid()::text,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT accounts_pkey PRIMARY KEY (id),
    -- ids travel in identity headers: no whitespace, no control characters.
    CONSTRAINT accounts_id_check CHECK (length(id) BETWEEN 1 AND 128 AND id !~ '[[:cntrl:][:space:]]'),
    CONSTRAINT accounts_name_check CHECK (length(name) BETWEEN 1 AND 256 AND name !~ '[[:cntrl:]]' AND name = btrim(name))
);

CREATE TABLE IF NOT EXISTS apps (
    account_id  text        NOT NULL,
    id          text        NOT NULL DEFAULT gen_random_uuid()::text,
    name        text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    active      boolean     NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT apps_pkey PRIMARY KEY (account_id, id),
    CONSTRAINT apps_name_key UNIQUE (account_id, name),
    CONSTRAINT apps_account_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE,
    CONSTRAINT apps_id_check CHECK (length(id) BETWEEN 1 AND 128 AND id !~ '[[:cntrl:][:space:]]'),
    CONSTRAINT apps_name_check CHECK (length(name) BETWEEN 1 AND 256 AND name !~ '[[:cntrl:]]' AND name = btrim(name)),
    CONSTRAINT apps_description_check CHECK (length(description) <= 4096)
);

CREATE TABLE IF NOT EXISTS tenants (
    account_id  text        NOT NULL,
    id          text        NOT NULL DEFAULT gen_random_uuid()::text,
    name        text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    active      boolean     NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tenants_pkey PRIMARY KEY (account_id, id),
    CONSTRAINT tenants_name_key UNIQUE (account_id, name),
    CONSTRAINT tenants_account_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE,
    CONSTRAINT tenants_id_check CHECK (length(id) BETWEEN 1 AND 128 AND id !~ '[[:cntrl:][:space:]]'),
    CONSTRAINT tenants_name_check CHECK (length(name) BETWEEN 1 AND 256 AND name !~ '[[:cntrl:]]' AND name = btrim(name)),
    CONSTRAINT tenants_description_check CHECK (length(description) <= 4096)
);

CREATE TABLE IF NOT EXISTS keys (
    account_id           text        NOT NULL,
    -- Key ids are unique across accounts: the change feed, last-used times
    -- and LookupKeyByID name a key by its id alone.
    id                   text        NOT NULL DEFAULT gen_random_uuid()::text,
    name                 text        NOT NULL,
    type                 text        NOT NULL,
    app_id               text,
    tenant_id            text,
    -- "sha256:<64 hex>" or "hmac-sha256:<64 hex>"; never the secret.
    hash                 text        NOT NULL,
    -- The hash a rotation replaced, valid until previous_valid_until.
    previous_hash        text,
    previous_valid_until timestamptz,
    -- The 32-byte digests the data plane looks keys up by. The CASE keeps a
    -- malformed hash from failing inside decode(): it is refused by
    -- keys_hash_check with a useful constraint name instead.
    digest               bytea GENERATED ALWAYS AS (
        CASE WHEN hash ~ '^(sha256|hmac-sha256):[0-9a-f]{64}$'
             THEN decode(substr(hash, strpos(hash, ':') + 1), 'hex') END) STORED,
    previous_digest      bytea GENERATED ALWAYS AS (
        CASE WHEN previous_hash ~ '^(sha256|hmac-sha256):[0-9a-f]{64}$'
             THEN decode(substr(previous_hash, strpos(previous_hash, ':') + 1), 'hex') END) STORED,
    scope                text        NOT NULL DEFAULT '',
    active               boolean     NOT NULL DEFAULT true,
    not_before           timestamptz,
    expires_at           timestamptz,
    ip_filters           text[]      NOT NULL DEFAULT '{}',
    grp                  text        NOT NULL DEFAULT '',
    description          text        NOT NULL DEFAULT '',
    -- [{"name": "...", "value": "...", "disabled": false}, ...]
    response_headers     jsonb       NOT NULL DEFAULT '[]',
    origin               text        NOT NULL DEFAULT 'generated',
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT keys_pkey PRIMARY KEY (id),
    CONSTRAINT keys_name_key UNIQUE (account_id, name),
    CONSTRAINT keys_account_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE,
    CONSTRAINT keys_app_fkey FOREIGN KEY (account_id, app_id) REFERENCES apps (account_id, id) ON DELETE CASCADE,
    CONSTRAINT keys_tenant_fkey FOREIGN KEY (account_id, tenant_id) REFERENCES tenants (account_id, id) ON DELETE CASCADE,
    CONSTRAINT keys_id_check CHECK (length(id) BETWEEN 1 AND 128 AND id !~ '[[:cntrl:][:space:]]'),
    CONSTRAINT keys_name_check CHECK (length(name) BETWEEN 1 AND 256 AND name !~ '[[:cntrl:]]' AND name = btrim(name)),
    CONSTRAINT keys_type_check CHECK (type IN ('service', 'app', 'account')),
    -- service: app and tenant; app: app, no tenant; account: neither.
    CONSTRAINT keys_app_id_check CHECK ((app_id IS NULL) = (type = 'account')),
    CONSTRAINT keys_tenant_id_check CHECK ((tenant_id IS NOT NULL) = (type = 'service')),
    CONSTRAINT keys_hash_check CHECK (hash ~ '^(sha256|hmac-sha256):[0-9a-f]{64}$'),
    CONSTRAINT keys_previous_hash_check CHECK (previous_hash IS NULL OR (
        previous_hash ~ '^(sha256|hmac-sha256):[0-9a-f]{64}$'
        AND split_part(previous_hash, ':', 1) = split_part(hash, ':', 1)
        AND previous_hash <> hash)),
    CONSTRAINT keys_previous_valid_until_check CHECK ((previous_hash IS NULL) = (previous_valid_until IS NULL)),
    CONSTRAINT keys_not_before_check CHECK (not_before IS NULL OR expires_at IS NULL OR not_before <= expires_at),
    CONSTRAINT keys_scope_check CHECK (length(scope) <= 8192),
    CONSTRAINT keys_ip_filters_check CHECK (cardinality(ip_filters) <= 1024 AND array_position(ip_filters, NULL) IS NULL),
    CONSTRAINT keys_grp_check CHECK (length(grp) <= 256 AND grp !~ '[[:cntrl:]]'),
    CONSTRAINT keys_description_check CHECK (length(description) <= 4096),
    CONSTRAINT keys_response_headers_check CHECK (jsonb_typeof(response_headers) = 'array' AND jsonb_array_length(response_headers) <= 64),
    CONSTRAINT keys_origin_check CHECK (origin IN ('generated', 'custom'))
);

-- Lookups by digest. A digest is unique among current and among previous
-- digests; the change-feed trigger also refuses a digest that is current
-- for one key and previous for another. Unique digests imply unique hashes.
CREATE UNIQUE INDEX IF NOT EXISTS keys_digest_key ON keys (digest);
CREATE UNIQUE INDEX IF NOT EXISTS keys_previous_digest_key ON keys (previous_digest) WHERE previous_digest IS NOT NULL;
-- Foreign keys (cascading deletes, the app/tenant triggers) and list filters.
CREATE INDEX IF NOT EXISTS keys_app_idx ON keys (account_id, app_id) WHERE app_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS keys_tenant_idx ON keys (account_id, tenant_id) WHERE tenant_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS keys_list_idx ON keys (account_id, created_at, id);
CREATE INDEX IF NOT EXISTS apps_list_idx ON apps (account_id, created_at, id);
CREATE INDEX IF NOT EXISTS tenants_list_idx ON tenants (account_id, created_at, id);

-- Last-used times live apart from keys so that recording them never touches
-- a keys row: no change-feed entry, no updated_at bump, no lock conflict
-- with the Account API.
CREATE TABLE IF NOT EXISTS key_usage (
    key_id       text        NOT NULL,
    last_used_at timestamptz NOT NULL,
    CONSTRAINT key_usage_pkey PRIMARY KEY (key_id),
    CONSTRAINT key_usage_key_fkey FOREIGN KEY (key_id) REFERENCES keys (id) ON DELETE CASCADE
);

-- The audit log. before/after are the record without any hash or secret.
-- No foreign key: the log outlives what it describes.
CREATE TABLE IF NOT EXISTS audit_events (
    id             bigserial   NOT NULL,
    account_id     text        NOT NULL,
    at             timestamptz NOT NULL DEFAULT now(),
    actor_key_id   text        NOT NULL DEFAULT '',
    actor_key_name text        NOT NULL DEFAULT '',
    action         text        NOT NULL,
    object_type    text        NOT NULL,
    object_id      text        NOT NULL,
    before         jsonb,
    after          jsonb,
    CONSTRAINT audit_events_pkey PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS audit_events_account_idx ON audit_events (account_id, id DESC);
