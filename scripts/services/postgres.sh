#!/usr/bin/env bash
# A throwaway PostgreSQL 15 on 127.0.0.1 for the hub's tests and scripts/cluster.sh.
#
#   scripts/services/postgres.sh start DIR [PORT]   # prints postgres://postgres@127.0.0.1:PORT/hub
#   scripts/services/postgres.sh stop DIR
#
# Data, socket and log under DIR/pg. initdb refuses root: as root, the cluster runs as the
# `postgres` user (the Debian package's). fsync is off: the data is a test's, gone with DIR.
set -euo pipefail
cmd="${1:?start|stop}"
dir="${2:?DIR}"
bin="${ZOO_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}"
if [ -z "$bin" ] || [ ! -x "$bin/pg_ctl" ]; then
  echo "postgres.sh: no PostgreSQL server (apt-get install postgresql, or set ZOO_PG_BIN)" >&2
  exit 1
fi
pg="$(cd "$(dirname "$dir")" && pwd)/$(basename "$dir")/pg"
as_pg() {
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$1"; else sh -c "$1"; fi
}
case "$cmd" in
start)
  port="${3:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
  mkdir -p "$pg"
  [ "$(id -u)" = 0 ] && chown postgres: "$pg"
  as_pg "'$bin/initdb' -D '$pg/data' -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 > '$pg/initdb.log' 2>&1" \
    || { cat "$pg/initdb.log" >&2; exit 1; }
  as_pg "'$bin/pg_ctl' -D '$pg/data' -l '$pg/server.log' -w -o \"-p $port -c listen_addresses=127.0.0.1 -k '$pg' -c fsync=off -c max_connections=200\" start > /dev/null" \
    || { cat "$pg/server.log" >&2; exit 1; }
  "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -qc 'CREATE DATABASE hub' > /dev/null
  echo "$port" > "$pg/port"
  echo "postgres://postgres@127.0.0.1:$port/hub"
  ;;
stop)
  [ -d "$pg/data" ] && as_pg "'$bin/pg_ctl' -D '$pg/data' -m immediate -w stop > /dev/null 2>&1" || true
  ;;
*)
  echo "usage: $0 start DIR [PORT] | stop DIR" >&2
  exit 2
  ;;
esac
