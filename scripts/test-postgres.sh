#!/usr/bin/env bash
# An ephemeral PostgreSQL cluster for tests and benchmarks: installed from Debian if
# missing, created in a temporary directory, run as a non-root user on a free
# loopback port, thrown away on `stop`.
#
#   eval "$(scripts/test-postgres.sh start)"   # exports PINGBACK_TEST_DATABASE_URL, …
#   scripts/test-postgres.sh stop "$PINGBACK_TEST_PG_DIR"
#   scripts/test-postgres.sh pause|resume DIR   # stop/start it in place (fault tests)
set -euo pipefail

log() { echo "test-postgres: $*" >&2; }

find_bindir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && echo "$dir"
}

ensure_installed() {
  if [ -z "$(find_bindir)" ]; then
    if [ "$(id -u)" -ne 0 ]; then
      log "PostgreSQL server binaries are missing and we are not root: install the 'postgresql' package"
      exit 1
    fi
    log "installing PostgreSQL server (apt-get install postgresql)…"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends postgresql >&2
  fi
  if [ -z "$(find_bindir)" ]; then
    log "PostgreSQL server binaries not found after install"
    exit 1
  fi
}

# Root may not run postgres: use the 'postgres' system account the package creates.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

start() {
  ensure_installed
  local bindir dir port
  bindir=$(find_bindir)
  dir=$(mktemp -d "${TMPDIR:-/tmp}/pingback-pg.XXXXXX")
  chmod 755 "$dir"
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$dir"
  fi
  as_owner "$bindir/initdb" -D "$dir/data" -A trust -U pingback -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  port=$(free_port)
  # Durability is pointless for a throw-away cluster: trade it for test speed.
  echo "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 -c shared_buffers=128MB" >"$dir/options"
  chmod 644 "$dir/options"
  resume "$dir"
  echo "export PINGBACK_TEST_DATABASE_URL=postgres://pingback@127.0.0.1:$port/postgres"
  echo "export PINGBACK_TEST_PG_DIR=$dir"
  echo "export PINGBACK_TEST_PG_BIN=$bindir"
  log "cluster ready on 127.0.0.1:$port (data in $dir)"
}

# Starts (again) a cluster made by `start`, on the same port: fault-injection tests
# stop the database under a running server and bring it back.
resume() {
  local dir=$1 bindir
  bindir=$(find_bindir)
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start -o "$(cat "$dir/options")" >&2 \
    || { cat "$dir/server.log" >&2; exit 1; }
}

pause() {
  local dir=$1 bindir
  bindir=$(find_bindir)
  as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >&2
}

stop() {
  local dir=${1:-${PINGBACK_TEST_PG_DIR:-}}
  [ -n "$dir" ] && [ -d "$dir/data" ] || { log "nothing to stop"; return 0; }
  local bindir
  bindir=$(find_bindir)
  as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >&2 || true
  rm -rf "$dir"
}

case "${1:-}" in
  start) start ;;
  stop) shift; stop "${1:-}" ;;
  pause) pause "${2:?cluster dir}" ;;
  resume) resume "${2:?cluster dir}" ;;
  *) echo "usage: $0 start | stop [DIR] | pause DIR | resume DIR" >&2; exit 2 ;;
esac
