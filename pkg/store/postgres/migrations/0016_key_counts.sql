-- 0016: the hygiene figures of the console's overview (keys without IP
-- filters, keys with a scope of everything) as indexes, so that counting
-- them (CountKeys) and listing them (ListKeys in creation order, keyset
-- pages) reads only the keys that match, not every key of the account:
-- partial indexes on exactly the predicates keyWhere writes. A scope of
-- everything is an empty own scope and no roles: the index holds the
-- keys of empty scope, and their roles are checked through key_roles'
-- primary key. Idempotent like the others.

CREATE INDEX IF NOT EXISTS keys_no_ip_filters_idx ON keys (account_id, created_at, id) WHERE cardinality(ip_filters) = 0;
CREATE INDEX IF NOT EXISTS keys_empty_scope_idx ON keys (account_id, created_at, id) WHERE scope = '';
