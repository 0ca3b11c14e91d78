#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server from the installed binaries on
# 127.0.0.1:$PGPORT (default 55432) in a temp directory and prints the
# export line for DATABASE_URL. Stop it with: pg-throwaway.sh stop DIR.
# As root the server runs as the postgres user, which PostgreSQL requires.
set -euo pipefail
bin=$(dirname "$(readlink -f "$(command -v initdb 2>/dev/null || ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")")
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ "${1:-}" = stop ]; then
  as_pg "$bin/pg_ctl" -D "$2/data" -m fast stop >/dev/null || true
  rm -rf "$2"
  exit 0
fi
port=${PGPORT:-55432}
dir=$(mktemp -d /tmp/chapkit-pg-XXXXXX)
[ "$(id -u)" = 0 ] && chown postgres "$dir"
as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >/dev/null
as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir -c fsync=off" start >/dev/null
echo "PGDIR=$dir"
echo "DATABASE_URL=postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
