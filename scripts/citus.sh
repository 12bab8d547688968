#!/usr/bin/env bash
# A throw-away Citus cluster on loopback for tests: a coordinator and two workers, each
# its own data directory (in a temporary folder) and free port, run as the non-root
# `postgres` user, with `shared_preload_libraries = 'citus'`.
#
# Citus is built from the vendored release source (../shared/vendor/citus-12.1.12.tar.gz,
# no reachable package repository serves it) against Debian's PostgreSQL 15, under
# target/citus/, once: later runs find the cache marker and skip the build, and skip
# `make install` when the installed citus.so is the one built.
#
#   scripts/citus.sh build                       # build + install only (idempotent)
#   eval "$(scripts/citus.sh start)"             # exports PINGBACK_TEST_DATABASE_URL, …
#   scripts/citus.sh stop "$PINGBACK_CITUS_DIR"
#   scripts/citus.sh pause-worker DIR N | resume-worker DIR N   # N = 1 or 2 (fault tests)
#   scripts/citus.sh add-worker DIR              # a third worker (rebalancing)
#   scripts/citus.sh run -- COMMAND…             # start, run COMMAND with the exports, stop
#
# Citus already installed (Citus packages, the official image, a build of your own)?
#   PINGBACK_CITUS_PREINSTALLED=1   skip the build and install; fail if citus.so is missing
#   CITUS_PG_BINDIR=/usr/lib/postgresql/16/bin   the PostgreSQL whose initdb/pg_ctl run the
#                                   nodes (and whose pg_config the build uses); default:
#                                   Debian's PostgreSQL 15, installed with apt-get if missing
# Other knobs: PINGBACK_CITUS_TARBALL (the source tarball), CITUS_MAKE_JOBS (default: cores),
# PINGBACK_CITUS_SHARD_COUNT (citus.shard_count of the nodes, default 32, Citus' own).
set -euo pipefail

log() { echo "citus: $*" >&2; }
die() { log "$*"; exit 1; }

CITUS_VERSION=12.1.12
PG_MAJOR=15
REPO_ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel 2>/dev/null || (cd "$(dirname "$0")/.." && pwd))
# Worktrees live beside each other; `git rev-parse --git-common-dir` finds the main
# checkout, whose parent holds shared/ as well.
default_tarball() {
  local candidate common
  for candidate in "$REPO_ROOT/../shared/vendor" \
    "$(dirname "$(git -C "$REPO_ROOT" rev-parse --path-format=absolute --git-common-dir 2>/dev/null || echo /nonexistent/x)")/../shared/vendor"; do
    if [ -f "$candidate/citus-$CITUS_VERSION.tar.gz" ]; then
      echo "$(cd "$candidate" && pwd)/citus-$CITUS_VERSION.tar.gz"
      return
    fi
  done
  echo "$REPO_ROOT/../shared/vendor/citus-$CITUS_VERSION.tar.gz"
}
TARBALL=${PINGBACK_CITUS_TARBALL:-$(default_tarball)}
BUILD_ROOT="$REPO_ROOT/target/citus"
SRC_DIR="$BUILD_ROOT/citus-$CITUS_VERSION"

as_root_needed() {
  [ "$(id -u)" -eq 0 ] || die "$1: run as root, or install it yourself (see the header of $0)"
}

apt_install() {
  as_root_needed "missing packages: $*"
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "${_APT_UPDATED:-}" ]; then
    apt-get update -qq >&2
    _APT_UPDATED=1
  fi
  log "apt-get install $*"
  apt-get install -y -qq --no-install-recommends "$@" >&2
}

pg_bindir() {
  if [ -n "${CITUS_PG_BINDIR:-}" ]; then
    echo "$CITUS_PG_BINDIR"
  else
    echo "/usr/lib/postgresql/$PG_MAJOR/bin"
  fi
}

ensure_server() {
  local bindir
  bindir=$(pg_bindir)
  if [ ! -x "$bindir/initdb" ] || [ ! -x "$bindir/pg_ctl" ]; then
    [ -z "${CITUS_PG_BINDIR:-}" ] || die "no initdb/pg_ctl in CITUS_PG_BINDIR=$CITUS_PG_BINDIR"
    apt_install "postgresql-$PG_MAJOR"
  fi
  [ -x "$bindir/initdb" ] || die "PostgreSQL server binaries not found in $bindir"
}

# The package directory PostgreSQL loads shared libraries from.
pkglibdir() {
  local bindir
  bindir=$(pg_bindir)
  if [ -x "$bindir/pg_config" ]; then
    "$bindir/pg_config" --pkglibdir
  else
    # Debian keeps libraries beside bin/ (…/15/bin → …/15/lib).
    echo "$(dirname "$bindir")/lib"
  fi
}

ensure_build_deps() {
  local missing=() pkg
  for pkg in postgresql-server-dev-$PG_MAJOR build-essential libcurl4-openssl-dev liblz4-dev \
    libzstd-dev libkrb5-dev libssl-dev libselinux1-dev libxslt1-dev libpam0g-dev libreadline-dev; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
}

build() {
  ensure_server
  local pkglib built_so marker stamp
  pkglib=$(pkglibdir)
  if [ "${PINGBACK_CITUS_PREINSTALLED:-0}" = 1 ]; then
    [ -f "$pkglib/citus.so" ] || die "PINGBACK_CITUS_PREINSTALLED=1 but $pkglib/citus.so does not exist (set CITUS_PG_BINDIR to the PostgreSQL Citus is installed for)"
    log "using the Citus installed in $pkglib (PINGBACK_CITUS_PREINSTALLED=1)"
    return
  fi
  [ -f "$TARBALL" ] || die "Citus source not found at $TARBALL (set PINGBACK_CITUS_TARBALL, or PINGBACK_CITUS_PREINSTALLED=1 to use an installed Citus)"
  ensure_build_deps
  local pg_config
  pg_config="$(pg_bindir)/pg_config"
  [ -x "$pg_config" ] || die "$pg_config missing (postgresql-server-dev-$PG_MAJOR)"
  built_so="$SRC_DIR/src/backend/distributed/citus.so"
  # The cache key: the tarball's checksum and the PostgreSQL it was built against.
  stamp="$(sha256sum "$TARBALL" | cut -d' ' -f1) $("$pg_config" --version)"
  marker="$BUILD_ROOT/.built"
  if [ -f "$marker" ] && [ "$(cat "$marker")" = "$stamp" ] && [ -f "$built_so" ]; then
    log "Citus $CITUS_VERSION already built (target/citus, $("$pg_config" --version))"
  else
    log "building Citus $CITUS_VERSION against $("$pg_config" --version) in target/citus (a few minutes)…"
    local started=$SECONDS
    rm -rf "$SRC_DIR" "$marker"
    mkdir -p "$BUILD_ROOT"
    tar xzf "$TARBALL" -C "$BUILD_ROOT"
    (
      cd "$SRC_DIR"
      ./configure PG_CONFIG="$pg_config" >"$BUILD_ROOT/configure.log" 2>&1 \
        || { tail -n 30 "$BUILD_ROOT/configure.log" >&2; exit 1; }
      # with_llvm=no: no JIT bitcode (Debian's PostgreSQL is built with LLVM, which
      # would compile every file a second time with clang, for nothing we use).
      make -j"${CITUS_MAKE_JOBS:-$(nproc)}" with_llvm=no >"$BUILD_ROOT/make.log" 2>&1 \
        || { tail -n 40 "$BUILD_ROOT/make.log" >&2; exit 1; }
    )
    echo "$stamp" >"$marker"
    log "built in $((SECONDS - started)) s"
  fi
  if [ -f "$pkglib/citus.so" ] && cmp -s "$built_so" "$pkglib/citus.so"; then
    log "citus.so already installed in $pkglib"
    return
  fi
  as_root_needed "installing Citus into $pkglib"
  log "make install (into $pkglib)"
  (cd "$SRC_DIR" && make install with_llvm=no >"$BUILD_ROOT/install.log" 2>&1) \
    || { tail -n 30 "$BUILD_ROOT/install.log" >&2; exit 1; }
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

psql_at() {
  local port=$1
  shift
  "$(pg_bindir)/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U pingback -d postgres -At "$@"
}

# Node names: coordinator, worker1, worker2; each DIR/NAME holds data/, options, port.
NODES="coordinator worker1 worker2"

start_node() {
  local dir=$1 name=$2
  as_owner "$(pg_bindir)/pg_ctl" -D "$dir/$name/data" -l "$dir/$name/server.log" -w -t 60 start \
    -o "$(cat "$dir/$name/options")" >&2 || { cat "$dir/$name/server.log" >&2; return 1; }
}

# A node: DIR/NAME/data, its options and port file, started.
init_node() {
  local dir=$1 name=$2 port
  as_owner mkdir -p "$dir/$name"
  as_owner "$(pg_bindir)/initdb" -D "$dir/$name/data" -A trust -U pingback -E UTF8 --locale=C.UTF-8 \
    >"$dir/$name.initdb.log" 2>&1 || { cat "$dir/$name.initdb.log" >&2; return 1; }
  port=$(free_port)
  echo "$port" | as_owner tee "$dir/$name/port" >/dev/null
  # Durability is pointless for a throw-away cluster: trade it for test speed.
  echo "-p $port -k $dir/$name -c listen_addresses=127.0.0.1 -c shared_preload_libraries=citus \
-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 \
-c shared_buffers=128MB -c max_worker_processes=64 -c citus.shard_count=${PINGBACK_CITUS_SHARD_COUNT:-32}" \
    | as_owner tee "$dir/$name/options" >/dev/null
  start_node "$dir" "$name"
  psql_at "$port" -c "CREATE EXTENSION IF NOT EXISTS citus" >&2
}

start() {
  build
  local bindir dir name
  bindir=$(pg_bindir)
  dir=$(mktemp -d "${TMPDIR:-/tmp}/pingback-citus.XXXXXX")
  chmod 755 "$dir"
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$dir"
  fi
  # Whatever fails from here on, do not leave nodes running.
  trap 'stop "$dir" >/dev/null 2>&1 || true' ERR
  for name in $NODES; do
    init_node "$dir" "$name"
  done
  local coordinator
  coordinator=$(cat "$dir/coordinator/port")
  psql_at "$coordinator" -c "SELECT citus_set_coordinator_host('127.0.0.1', $coordinator)" >/dev/null
  for name in worker1 worker2; do
    psql_at "$coordinator" -c "SELECT citus_add_node('127.0.0.1', $(cat "$dir/$name/port"))" >/dev/null
  done
  trap - ERR
  echo "export PINGBACK_TEST_DATABASE_URL=postgres://pingback@127.0.0.1:$coordinator/postgres"
  echo "export PINGBACK_CITUS_DIR=$dir"
  echo "export PINGBACK_TEST_PG_BIN=$bindir"
  log "cluster ready: coordinator 127.0.0.1:$coordinator, workers $(cat "$dir/worker1/port") and $(cat "$dir/worker2/port") (Citus $(psql_at "$coordinator" -c "SELECT extversion FROM pg_extension WHERE extname = 'citus'"), data in $dir)"
}

# One more worker (worker3, worker4, …), registered in the maintenance database
# (`postgres`); the databases made for Pingback need it registered too (README).
add_worker() {
  local dir=$1 n=3
  while [ -d "$dir/worker$n" ]; do n=$((n + 1)); done
  init_node "$dir" "worker$n"
  psql_at "$(cat "$dir/coordinator/port")" \
    -c "SELECT citus_add_node('127.0.0.1', $(cat "$dir/worker$n/port"))" >/dev/null
  echo "worker$n 127.0.0.1:$(cat "$dir/worker$n/port")"
}

worker_dir() {
  local dir=$1 n=$2
  [ -d "$dir/worker$n/data" ] || die "no worker$n in $dir"
}

# Stops one worker in place (fault tests) and starts it again on the same port.
pause_worker() {
  worker_dir "$1" "$2"
  as_owner "$(pg_bindir)/pg_ctl" -D "$1/worker$2/data" -m fast -w stop >&2
}

resume_worker() {
  worker_dir "$1" "$2"
  start_node "$1" "worker$2"
}

stop() {
  local dir=${1:-${PINGBACK_CITUS_DIR:-}} name
  [ -n "$dir" ] && [ -d "$dir" ] || { log "nothing to stop"; return 0; }
  for name in "$dir"/*/; do
    if [ -f "$name/data/postmaster.pid" ]; then
      as_owner "$(pg_bindir)/pg_ctl" -D "$name/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
  done
  rm -rf "$dir"
}

run() {
  [ "${1:-}" = "--" ] && shift
  [ $# -gt 0 ] || die "usage: $0 run -- COMMAND…"
  local exports
  exports=$(start)
  eval "$exports"
  trap 'stop "$PINGBACK_CITUS_DIR"' EXIT INT TERM
  "$@"
}

case "${1:-}" in
  build) build ;;
  start) start ;;
  stop) shift; stop "${1:-}" ;;
  pause-worker) pause_worker "${2:?cluster dir}" "${3:?worker number}" ;;
  resume-worker) resume_worker "${2:?cluster dir}" "${3:?worker number}" ;;
  add-worker) add_worker "${2:?cluster dir}" ;;
  run) shift; run "$@" ;;
  *) echo "usage: $0 build | start | stop [DIR] | pause-worker DIR N | resume-worker DIR N | add-worker DIR | run -- CMD…" >&2; exit 2 ;;
esac
