#!/usr/bin/env bash
# make demo: keygate in database mode against the local PostgreSQL, seeded
# with the demo apps, tenants and keys of examples/keys.yaml (it has no roles
# or denials: create them in the console),
# with the console on 127.0.0.1:9194 (and ext_authz on :9191, the Account
# API on :9192, admin on :9193: serve's defaults; KEYGATE_*_ADDR move them).
#
# The database is DEMO_DATABASE_URL (default keygate_demo on the local
# server), created when missing. The first run bootstraps the account
# "demo" with an account key for the console and keeps its secret in
# bin/demo-console-key-<database> (mode 600, never printed); later runs reuse it and
# import the demo file again (which changes nothing that is already there).
set -euo pipefail
cd "$(dirname "$0")/.."

url=${DEMO_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/keygate_demo?sslmode=disable}
bin=${KEYGATE:-bin/keygate}

# The database: created through the server's postgres database when missing.
db=$(printf '%s' "$url" | sed -E 's#^.*/([^/?]+)(\?.*)?$#\1#')
admin=$(printf '%s' "$url" | sed -E 's#/[^/?]+(\?|$)#/postgres\1#')
if ! command -v psql >/dev/null 2>&1; then
	echo "make demo: psql not found; install PostgreSQL's client (and server), or create the database $db yourself" >&2
	exit 1
fi
if [ "$(psql "$admin" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
	echo "make demo: creating database $db"
	psql "$admin" -qc "CREATE DATABASE \"$db\""
fi
keyfile=bin/demo-console-key-$db
export KEYGATE_DATABASE_URL="$url"
"$bin" migrate >/dev/null

# The account and its console key, once.
has_account=$(psql "$url" -tAc "SELECT 1 FROM accounts WHERE id = 'demo'")
if [ ! -s "$keyfile" ] || [ "$has_account" != 1 ]; then
	umask 077
	out=$("$bin" bootstrap --account demo --key-name "console-admin-$(date +%s)")
	printf '%s\n' "$out" | tail -n 1 >"$keyfile"
	echo "make demo: account demo bootstrapped; its console key is in $keyfile"
fi
"$bin" import-file --account demo examples/keys.yaml >/dev/null

cat <<MSG

  keygate demo: the console is at http://${KEYGATE_CONSOLE_ADDR:-127.0.0.1:9194}/
  sign in with the account key in $keyfile  (cat $keyfile)
  or, read-only, with the demo's kg_aak_nUiYTIUqr5Aj7kIUAGkO8XBSCjI5Lh45WctQ
  Stop with Ctrl-C.

MSG
exec "$bin" serve --routes-file examples/routes.yaml --log-format text
