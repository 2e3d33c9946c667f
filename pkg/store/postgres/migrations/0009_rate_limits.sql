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
