#!/usr/bin/env bash
# `make bench`: pingback as shipped vs hand-written references vs pgbench, on the same
# data, in the same run. Writes docs/benchmarks.md and bench-results/results.json.
#
#   make bench                 # full run (a few minutes)
#   BENCH_QUICK=1 make bench   # smoke test: small data, one 3 s run per size
#   BENCH_SCENARIOS=writes make bench   # only the write scenario (reads: BENCH_SCENARIOS=reads)
#   BENCH_SCENARIOS=list make bench     # only the list scenario (any subset works: "reads list")
#   BENCH_SCENARIOS=webhooks make bench # only the webhook delivery scenario
#   BENCH_SCENARIOS=citus make bench    # single-node PostgreSQL vs a Citus cluster (not in the default list)
#   BENCH_SCENARIOS=streams make bench  # 1,000 Server-Sent-Event streams: fan-out latency, memory
#
# Steps: release build → throw-away PostgreSQL (scripts/test-postgres.sh) with
# pg_stat_statements, pinned to the server core → migrate → `pingback generate --style
# long` per size (issue 18's data: every message 20–400 characters with some non-ASCII
# text, quotes and line breaks, 10 % with attachments) → the hand-written baseline's
# schema loaded from pingback's tables (benches/baseline/handwritten.sql) → per size:
# start the four HTTP servers (server core), check the references answer pingback's
# bytes, then interleaved runs of wrk (load core) against each and pgbench (load core)
# against the database → medians, ratios, targets, report.
#
# Read scenario (issue 18: "fast as shipped"), five systems:
#   pingback       `pingback serve` as shipped: only the database URL, the bind address
#                  and the JWT secret set (PINGBACK__DATABASE__URL, PINGBACK__SERVER__BIND,
#                  PINGBACK__AUTH__JWT_SECRET); everything else config/default.toml's
#                  (log level info: one access-log line per request, on stderr, here a
#                  file; workers = one per core the process may run on, i.e. 1 under
#                  taskset — the harness counts its worker threads and reports them).
#   pingback-warn  the same binary with only PINGBACK__LOG__LEVEL=warn added: logging
#                  cost = 1 − shipped / warn throughput.
#   baseline       pingback-baseline: pingback's own SQL on pingback's schema, the body
#                  serialized straight from the rows ("baseline (same SQL)").
#   handwritten    pingback-handwritten: its own natural schema (schema `handwritten`,
#                  attachments as a JSONB array on the message row), two pipelined
#                  statements, the body written by hand, no logging ("hand-written").
#   pgbench        the same-SQL statement run by pgbench: the database ceiling.
# Every other scenario also runs pingback as shipped (the shipped log level included);
# the CLI commands that prepare data (migrate, generate, token) run with the shipped
# defaults too.
#
# Write scenario (BENCH_SCENARIOS contains `writes`): POST /api/v1/conversations/{id}/
# messages (benches/wrk/post_message.lua) to 100 writable conversations of a business of
# its own, without and with an Idempotency-Key, vs pgbench running the same SQL
# transaction without the event log's statements (benches/pgbench/post_message.sql) and
# with them (benches/pgbench/post_message_events.sql: pingback's transaction exactly —
# the head read with the whole customer row the event carries and the pending event
# with the `data` of a real message.created event pingback wrote in the check — while
# one more client numbers the pending events back to back, benches/pgbench/
# number_events.sql); the two pgbench runs side by side give the event log's cost
# (1 − with/without, target ≤ 15 %). A writes-only run replaces only the
# "Writes" section of docs/benchmarks.md and the "writes" key of results.json.
#
# List scenario (BENCH_SCENARIOS contains `list`): GET /api/v1/conversations?limit=25 on
# a business of its own with BENCH_LIST_CONVERSATIONS (20,000) conversations: the first
# page and the page BENCH_LIST_DEPTH (10,000) deep (its cursor got by paging the API with
# limit=100), with benches/wrk/list.lua, vs pgbench running the same statement (one per
# page, no transaction) with the deep page's bound values (benches/pgbench/list.sql). A
# list-only run replaces only the "List" section and the "list" key of results.json.
#
# Webhook scenario (BENCH_SCENARIOS contains `webhooks`): delivery throughput to one
# local endpoint. A business of its own; pingback-webhook-sink (benches/baseline,
# answers 204 at once, records every webhook-id) on the load core; pingback as shipped
# but allowed to deliver over http to 127.0.0.1; the sink registered (POST
# /api/v1/webhooks); then `pingback generate` writes BENCH_WEBHOOK_EVENTS (10,000)
# conversations of one message, one conversation.imported event each (after the
# registration: an endpoint gets only the events after it), and the harness waits
# until the sink has them all and GET /api/v1/webhooks/{id} shows delivered_through =
# the last event id. Throughput over the sink's first→last arrival (target ≥ 1,000/s),
# end to end from the start of generation, in order, lost, repeats; pingback's and
# PostgreSQL's CPU and the statements per delivery say where the time goes. A
# webhooks-only run replaces only the "Webhooks" section and the "webhooks" key; the
# run fails if an event was lost or arrived out of order.
#
# Citus scenario (BENCH_SCENARIOS=citus; not in the default list: it needs Citus, built
# once into target/citus by scripts/citus.sh): single-node PostgreSQL (this run's own
# throw-away cluster) side by side with a throw-away Citus cluster (scripts/citus.sh:
# coordinator + 2 workers on this machine), on the same data, in the same run. The
# database is made on every node and migrated as scripts/test-citus.sh and
# scripts/citus-measure.sh do (`pingback migrate` distributes the tables by business);
# `pingback generate` writes the same data (same business, counts and seed: the same
# ids) into both; every PostgreSQL instance (the single node and the three Citus
# nodes) is pinned to the server core, like pingback. Two pingbacks as shipped (only
# URL, bind, secret set; one worker, like the other scenarios), one per database, then
# interleaved wrk runs against each: GET /api/v1/conversations/{id} at
# BENCH_CITUS_MESSAGES (100) messages over BENCH_CITUS_CONVERSATIONS (100) conversations
# (benches/wrk/conversations.lua), and POST …/messages to 100 writable conversations
# (benches/wrk/post_message.lua). Req/s, p50/p99, errors and the Citus ÷ single-node
# ratios; a citus-only run replaces only the "Citus" section and the "citus" key.
#
# Streams scenario (BENCH_SCENARIOS contains `streams`): BENCH_STREAMS (1,000) Server-Sent-
# Event streams (GET /api/v1/events/stream) on one business, held by
# pingback-stream-client (benches/baseline, on the load core), to pingback as shipped;
# then BENCH_STREAM_POSTS (500) messages posted BENCH_STREAM_RATE (100) a second (each
# without waiting for the previous answer): each event's fan-out latency from the POST's answer to the last stream
# receiving it (contract: within 1 s), pingback's RSS idle, with the streams open and at
# its peak, errors. Then (BENCH_STREAM_CONTENTION=1, the default) the event counter under
# contention: the write scenario's load to 100 conversations of one business vs one
# conversation in each of BENCH_CONTENTION_BUSINESSES (100) businesses. A streams-only
# run replaces only the "Event streams" section and the "streams" key.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

log() { echo "bench: $*" >&2; }
die() { log "$*"; exit 1; }

QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
  DURATION=${BENCH_DURATION:-3}
  REPEATS=${BENCH_REPEATS:-1}
  WARMUP=${BENCH_WARMUP:-1}
  SIZES=${BENCH_SIZES:-"10:20 100:10 1000:5 10000:2"}
else
  DURATION=${BENCH_DURATION:-10}
  REPEATS=${BENCH_REPEATS:-3}
  WARMUP=${BENCH_WARMUP:-3}
  SIZES=${BENCH_SIZES:-"10:200 100:100 1000:20 10000:4"}
fi
CONNECTIONS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-1}             # wrk has one core: one thread
PGBENCH_CLIENTS=${BENCH_PGBENCH_CLIENTS:-16}
SCENARIOS=${BENCH_SCENARIOS:-"reads writes list webhooks streams"}
case " $SCENARIOS " in *" reads "*) RUN_READS=1 ;; *) RUN_READS=0 ;; esac
case " $SCENARIOS " in *" writes "*) RUN_WRITES=1 ;; *) RUN_WRITES=0 ;; esac
case " $SCENARIOS " in *" list "*) RUN_LIST=1 ;; *) RUN_LIST=0 ;; esac
case " $SCENARIOS " in *" webhooks "*) RUN_WEBHOOKS=1 ;; *) RUN_WEBHOOKS=0 ;; esac
case " $SCENARIOS " in *" citus "*) RUN_CITUS=1 ;; *) RUN_CITUS=0 ;; esac
case " $SCENARIOS " in *" streams "*) RUN_STREAMS=1 ;; *) RUN_STREAMS=0 ;; esac
for scenario in $SCENARIOS; do
  case $scenario in reads | writes | list | webhooks | citus | streams) ;; *) echo "bench: BENCH_SCENARIOS: unknown scenario '$scenario' (reads, writes, list, webhooks, citus, streams)" >&2; exit 1 ;; esac
done
[ "$RUN_READS$RUN_WRITES$RUN_LIST$RUN_WEBHOOKS$RUN_CITUS$RUN_STREAMS" != 000000 ] || { echo "bench: BENCH_SCENARIOS names no scenario" >&2; exit 1; }
# Writes: conversations posted to, their messages at the start, and whether to run the
# variant with an Idempotency-Key too.
WRITE_CONVERSATIONS=${BENCH_WRITE_CONVERSATIONS:-100}
WRITE_MESSAGES=10
WRITE_IDEMPOTENT=${BENCH_WRITE_IDEMPOTENT:-1}
# The write scenario's repeats: 5 by default, not 3. Its pgbench runs vary by up to
# ±10 points of the event log's cost from one repeat to the next (16 clients contending
# on one core), which a median of 3 does not settle.
if [ "$QUICK" = 1 ]; then WRITE_REPEATS=${BENCH_WRITE_REPEATS:-$REPEATS}; else WRITE_REPEATS=${BENCH_WRITE_REPEATS:-5}; fi
# List: conversations of its business (2 messages each), the deep page's position, the
# page size measured and the page size used to reach the deep cursor.
LIST_CONVERSATIONS=${BENCH_LIST_CONVERSATIONS:-20000}
LIST_MESSAGES=2
LIST_DEPTH=${BENCH_LIST_DEPTH:-10000}
LIST_LIMIT=25
LIST_PAGE=100
# Webhooks: events delivered to the one endpoint, and how long to wait for them (from
# the start of generation).
WEBHOOK_EVENTS=${BENCH_WEBHOOK_EVENTS:-10000}
WEBHOOK_TIMEOUT=${BENCH_WEBHOOK_TIMEOUT:-300}
# Citus: the read's conversations and their messages, the writable conversations posted
# to (of 3× as many generated), and the businesses of both (the same on both databases).
CITUS_CONVERSATIONS=${BENCH_CITUS_CONVERSATIONS:-100}
CITUS_MESSAGES=${BENCH_CITUS_MESSAGES:-100}
CITUS_WRITE_CONVERSATIONS=100
CITUS_WRITE_MESSAGES=10
CITUS_READ_BUSINESS=b0000000-0000-4000-c000-000000000001
CITUS_WRITE_BUSINESS=b0000000-0000-4000-c000-000000000002
# Streams: how many, the posts and their rate, the idle hold with the streams open (s),
# the conversations posted to; the contention table's businesses and conversations.
STREAMS=${BENCH_STREAMS:-1000}
STREAM_POSTS=${BENCH_STREAM_POSTS:-500}
STREAM_RATE=${BENCH_STREAM_RATE:-100}
STREAM_HOLD=4
STREAM_CONVERSATIONS=20
STREAM_BUSINESS=b0000000-0000-4000-d000-000000000001
CONTENTION=${BENCH_STREAM_CONTENTION:-1}
CONTENTION_BUSINESSES=${BENCH_CONTENTION_BUSINESSES:-100}
CONTENTION_CONVERSATIONS=100
CONTENTION_ONE_BUSINESS=b0000000-0000-4000-d100-000000000001
LOAD_CPU=${BENCH_LOAD_CPU:-0}           # wrk, pgbench
SERVER_CPU=${BENCH_SERVER_CPU:-1}       # the HTTP server under test and PostgreSQL
WORKERS=1                               # the references' actix workers (one core: one)
SEED=7
# CPU per request is measured between SKIP s after the start and SKIP s before the end
# of each run (steady state; see benches/bench.py window).
SKIP=$(awk -v d="$DURATION" 'BEGIN { s = d * 0.15; if (s < 1) s = 1; print s }')
SECRET="pingback-bench-secret-0123456789abcdef-not-for-production"

OUT=$ROOT/bench-results
WORK=$OUT/work
DOC=$ROOT/docs/benchmarks.md
PINGBACK=$ROOT/target/release/pingback
BASELINE=$ROOT/target/release/pingback-baseline
HANDWRITTEN=$ROOT/target/release/pingback-handwritten
HANDWRITTEN_SQL=$ROOT/benches/baseline/handwritten.sql
SINK=$ROOT/target/release/pingback-webhook-sink
STREAM_CLIENT=$ROOT/target/release/pingback-stream-client
HELPER=$ROOT/benches/bench.py
LUA=$ROOT/benches/wrk/conversations.lua
WRITE_LUA=$ROOT/benches/wrk/post_message.lua
WRITE_PGBENCH=$ROOT/benches/pgbench/post_message.sql
WRITE_EVENTS_PGBENCH=$ROOT/benches/pgbench/post_message_events.sql
WRITE_NUMBERING_PGBENCH=$ROOT/benches/pgbench/number_events.sql
# Citus runs the event statements pingback issues there (it cannot route a
# data-modifying WITH that inserts): the event's INSERT of its own, the numbering's rows
# taken and inserted apart.
CITUS_WRITE_EVENTS_PGBENCH=$ROOT/benches/pgbench/post_message_events_citus.sql
CITUS_WRITE_NUMBERING_PGBENCH=$ROOT/benches/pgbench/number_events_citus.sql
LIST_LUA=$ROOT/benches/wrk/list.lua
LIST_PGBENCH=$ROOT/benches/pgbench/list.sql
WEBHOOK_BUSINESS=b0000000-0000-4000-b000-000000000001

awk -v d="$DURATION" -v s="$SKIP" 'BEGIN { exit !(d > 2 * s) }' || die "BENCH_DURATION must be at least 3 s"
[ "$(nproc)" -ge 2 ] || log "warning: fewer than 2 cores; load generator and server will share a core"

# --- tools -----------------------------------------------------------------------

command -v python3 >/dev/null || die "python3 is required"
command -v taskset >/dev/null || die "taskset (util-linux) is required"
if ! command -v wrk >/dev/null; then
  [ "$(id -u)" -eq 0 ] || die "wrk is missing: install it (apt-get install wrk)"
  log "installing wrk (apt-get install wrk)…"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >&2 \
    || { DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >&2; }
fi

log "building (cargo build --release --locked -p pingback-server -p pingback-baseline: pingback, the two baselines, the webhook sink, the stream client)…"
cargo build --release --locked -p pingback-server -p pingback-baseline >&2

rm -rf "$WORK"
mkdir -p "$WORK"

# --- cleanup ---------------------------------------------------------------------

SERVER_PIDS=()
PG_DIR=""
CITUS_DIR=""
cleanup() {
  local pid
  for pid in "${SERVER_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${SERVER_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "$CITUS_DIR" ]; then
    for node in coordinator worker1 worker2; do
      cp "$CITUS_DIR/$node/server.log" "$WORK/citus-$node.log" 2>/dev/null || true
    done
    "$ROOT/scripts/citus.sh" stop "$CITUS_DIR" || true
  fi
  if [ -n "$PG_DIR" ]; then
    cp "$PG_DIR/server.log" "$WORK/postgres.log" 2>/dev/null || true
    "$ROOT/scripts/test-postgres.sh" stop "$PG_DIR" || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- database --------------------------------------------------------------------

eval "$("$ROOT/scripts/test-postgres.sh" start)"
PG_DIR=$PINGBACK_TEST_PG_DIR
PG_BIN=$PINGBACK_TEST_PG_BIN

# pg_stat_statements must be preloaded: restart the cluster with the option added.
"$ROOT/scripts/test-postgres.sh" pause "$PG_DIR"
echo "$(cat "$PG_DIR/options") -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=top -c pg_stat_statements.max=1000" >"$PG_DIR/options.new"
cat "$PG_DIR/options.new" >"$PG_DIR/options"
rm -f "$PG_DIR/options.new"
"$ROOT/scripts/test-postgres.sh" resume "$PG_DIR"

pin_postgres() {
  # The postmaster and its current children; later backends inherit the affinity.
  local postmaster pid
  postmaster=$(head -n 1 "$PG_DIR/data/postmaster.pid")
  for pid in "$postmaster" $(pgrep -P "$postmaster" || true); do
    taskset -apc "$SERVER_CPU" "$pid" >/dev/null
  done
}
pin_postgres

ADMIN_URL=$PINGBACK_TEST_DATABASE_URL
DB_URL=${ADMIN_URL%/*}/pingback_bench
psql_admin() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$ADMIN_URL" "$@"; }
psql_bench() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$DB_URL" "$@"; }
psql_admin -c "CREATE DATABASE pingback_bench"
psql_bench -c "CREATE EXTENSION pg_stat_statements"
PG_VERSION=$(psql_bench -At -c "SHOW server_version")

# pingback as shipped: the database URL and the secret (and, per server, the bind
# address) are all the configuration it gets; no log level, no worker count.
export PINGBACK__DATABASE__URL=$DB_URL
export PINGBACK__AUTH__JWT_SECRET=$SECRET
while read -r name; do unset "$name"; done < <(env | sed -n 's/^\(PINGBACK__[A-Z0-9_]*\)=.*/\1/p' | grep -v -e '^PINGBACK__DATABASE__URL$' -e '^PINGBACK__AUTH__JWT_SECRET$')
unset PINGBACK_ENV PINGBACK_CONFIG_DIR RUST_LOG

log "migrating…"
"$PINGBACK" migrate >&2

# --- data ------------------------------------------------------------------------

business_for() { printf 'b0000000-0000-4000-8000-%012d\n' "$1"; }

psql_bench -c "CREATE TABLE bench_ids (size integer NOT NULL, n integer NOT NULL, business_id uuid NOT NULL, id uuid NOT NULL, PRIMARY KEY (size, n))"
CONVERSATIONS_JSON="{"
[ "$RUN_READS" = 1 ] || SIZES=""
for spec in $SIZES; do
  size=${spec%%:*}
  count=${spec##*:}
  business=$(business_for "$size")
  log "generating $count conversations of $size messages (business $business)…"
  start=$(date +%s.%N)
  "$PINGBACK" generate --business-id "$business" --conversations "$count" --messages "$size" --seed "$((SEED + size))" \
    --style long | grep -E '^[0-9a-fA-F-]{36}$' >"$WORK/ids-$size.txt" || die "pingback generate failed"
  got=$(wc -l <"$WORK/ids-$size.txt")
  [ "$got" -eq "$count" ] || die "pingback generate printed $got ids, expected $count"
  log "  done in $(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')") s"
  awk -v size="$size" -v business="$business" '{ printf "%d,%d,%s,%s\n", size, NR, business, $1 }' \
    "$WORK/ids-$size.txt" >"$WORK/bench-ids-$size.csv"
  psql_bench -c "\\copy bench_ids FROM '$WORK/bench-ids-$size.csv' WITH (FORMAT csv)"
  "$PINGBACK" token --business-id "$business" --sub bench --ttl 86400 >"$WORK/token-$size.txt"
  CONVERSATIONS_JSON+="\"$size\": $count, "
done
CONVERSATIONS_JSON="${CONVERSATIONS_JSON%, }}"
DATA_JSON=null
if [ "$RUN_READS" = 1 ]; then
  # The hand-written baseline's own schema, loaded from pingback's rows (attachments
  # aggregated into a JSONB array per message, in position order).
  log "loading the hand-written baseline's schema (benches/baseline/handwritten.sql)…"
  psql_bench -f "$HANDWRITTEN_SQL"
  # What the data is like (issue 18: 20–400 characters, some non-ASCII, newlines,
  # quotes; attachments on 10 % of the messages).
  DATA_JSON=$(psql_bench -At -c "SELECT json_build_object('messages', count(*), 'min_chars', min(char_length(content)), 'median_chars', percentile_cont(0.5) WITHIN GROUP (ORDER BY char_length(content)), 'max_chars', max(char_length(content)), 'non_ascii', avg((octet_length(content) > char_length(content))::int), 'newlines', avg((strpos(content, E'\\n') > 0)::int), 'quotes', avg((strpos(content, '\"') > 0)::int), 'with_attachments', avg((attachments <> '[]')::int), 'attachments', sum(jsonb_array_length(attachments))) FROM handwritten.messages")
fi

# Writes: a business of their own; `pingback generate` makes ~20 % of its conversations
# closed (they refuse messages) and leaves some unassigned, so generate more and keep
# WRITE_CONVERSATIONS that are not closed and have an assignee (pgbench cannot bind a
# NULL assignee_id in the UPDATE; see benches/pgbench/post_message.sql).
WRITE_BUSINESS=b0000000-0000-4000-9000-000000000001
if [ "$RUN_WRITES" = 1 ]; then
  generated=$((WRITE_CONVERSATIONS * 3))
  log "writes: generating $generated conversations of $WRITE_MESSAGES messages (business $WRITE_BUSINESS)…"
  "$PINGBACK" generate --business-id "$WRITE_BUSINESS" --conversations "$generated" --messages "$WRITE_MESSAGES" \
    --seed "$SEED" >/dev/null || die "pingback generate failed"
  psql_bench -At -c "SELECT id FROM conversations WHERE business_id = '$WRITE_BUSINESS' AND status <> 'closed' AND assignee_id IS NOT NULL ORDER BY id LIMIT $WRITE_CONVERSATIONS" \
    >"$WORK/write-ids.txt"
  got=$(wc -l <"$WORK/write-ids.txt")
  [ "$got" -eq "$WRITE_CONVERSATIONS" ] || die "writes: only $got writable conversations, expected $WRITE_CONVERSATIONS"
  python3 "$HELPER" write-bodies --seed "$SEED" --bodies "$WORK/write-bodies.jsonl" --csv "$WORK/write-bodies.csv"
  awk -v business="$WRITE_BUSINESS" '{ printf "%d,%s,%s\n", NR, business, $1 }' "$WORK/write-ids.txt" >"$WORK/write-ids.csv"
  psql_bench -c "CREATE TABLE write_bench_ids (n integer PRIMARY KEY, business_id uuid NOT NULL, id uuid NOT NULL)"
  psql_bench -c "CREATE TABLE write_bench_bodies (n integer PRIMARY KEY, sender_id uuid NOT NULL, content text NOT NULL)"
  psql_bench -c "\\copy write_bench_ids FROM '$WORK/write-ids.csv' WITH (FORMAT csv)"
  psql_bench -c "\\copy write_bench_bodies FROM '$WORK/write-bodies.csv' WITH (FORMAT csv)"
  "$PINGBACK" token --business-id "$WRITE_BUSINESS" --sub bench-writer --ttl 86400 >"$WORK/write-token.txt"
fi
LIST_BUSINESS=b0000000-0000-4000-a000-000000000001
if [ "$RUN_LIST" = 1 ]; then
  log "list: generating $LIST_CONVERSATIONS conversations of $LIST_MESSAGES messages (business $LIST_BUSINESS)…"
  start=$(date +%s.%N)
  "$PINGBACK" generate --business-id "$LIST_BUSINESS" --conversations "$LIST_CONVERSATIONS" --messages "$LIST_MESSAGES" \
    --seed "$((SEED + 2))" >/dev/null || die "pingback generate failed"
  log "  done in $(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')") s"
  "$PINGBACK" token --business-id "$LIST_BUSINESS" --sub bench --ttl 86400 >"$WORK/list-token.txt"
fi
# Streams: a business whose events the streams follow, with conversations to post to;
# the contention table: 100 writable conversations of one business, and one writable
# conversation in each of BENCH_CONTENTION_BUSINESSES (100) businesses.
if [ "$RUN_STREAMS" = 1 ]; then
  log "streams: generating $((STREAM_CONVERSATIONS * 3)) conversations of 2 messages (business $STREAM_BUSINESS)…"
  "$PINGBACK" generate --business-id "$STREAM_BUSINESS" --conversations "$((STREAM_CONVERSATIONS * 3))" --messages 2 \
    --seed "$((SEED + 6))" >/dev/null || die "pingback generate failed"
  psql_bench -At -c "SELECT id FROM conversations WHERE business_id = '$STREAM_BUSINESS' AND status <> 'closed' AND assignee_id IS NOT NULL ORDER BY id LIMIT $STREAM_CONVERSATIONS" \
    >"$WORK/stream-ids.txt"
  [ -s "$WORK/stream-ids.txt" ] || die "streams: no writable conversation"
  python3 "$HELPER" write-bodies --seed "$((SEED + 6))" --bodies "$WORK/stream-bodies.jsonl" --csv "$WORK/stream-bodies.csv"
  "$PINGBACK" token --business-id "$STREAM_BUSINESS" --sub bench-streams --ttl 86400 >"$WORK/stream-token.txt"
  if [ "$CONTENTION" = 1 ]; then
    log "streams: contention: generating $((CONTENTION_CONVERSATIONS * 3)) conversations of 10 messages in one business and 10 in each of $CONTENTION_BUSINESSES businesses…"
    "$PINGBACK" generate --business-id "$CONTENTION_ONE_BUSINESS" --conversations "$((CONTENTION_CONVERSATIONS * 3))" \
      --messages 10 --seed "$((SEED + 7))" >/dev/null || die "pingback generate failed"
    psql_bench -At -c "SELECT id FROM conversations WHERE business_id = '$CONTENTION_ONE_BUSINESS' AND status <> 'closed' AND assignee_id IS NOT NULL ORDER BY id LIMIT $CONTENTION_CONVERSATIONS" \
      >"$WORK/contention-one-ids.txt"
    got=$(wc -l <"$WORK/contention-one-ids.txt")
    [ "$got" -eq "$CONTENTION_CONVERSATIONS" ] || die "streams: contention: only $got writable conversations, expected $CONTENTION_CONVERSATIONS"
    "$PINGBACK" token --business-id "$CONTENTION_ONE_BUSINESS" --sub bench-writer --ttl 86400 >"$WORK/contention-one-token.txt"
    : >"$WORK/contention-spread-businesses.txt"
    for n in $(seq 1 "$CONTENTION_BUSINESSES"); do
      business=$(printf 'b0000000-0000-4000-d200-%012d' "$n")
      echo "$business" >>"$WORK/contention-spread-businesses.txt"
      "$PINGBACK" generate --business-id "$business" --conversations 10 --messages 10 --seed "$((SEED + 7))" >/dev/null \
        || die "pingback generate failed"
    done
    # One writable conversation per business, with that business's token.
    psql_bench -At -F ' ' -c "SELECT DISTINCT ON (business_id) business_id, id FROM conversations WHERE business_id::text LIKE 'b0000000-0000-4000-d200-%' AND status <> 'closed' AND assignee_id IS NOT NULL ORDER BY business_id, id" \
      >"$WORK/contention-spread-pairs.txt"
    : >"$WORK/contention-spread-ids.txt"
    while read -r business conversation; do
      echo "$conversation $("$PINGBACK" token --business-id "$business" --sub bench-writer --ttl 86400)" >>"$WORK/contention-spread-ids.txt"
    done <"$WORK/contention-spread-pairs.txt"
    got=$(wc -l <"$WORK/contention-spread-ids.txt")
    [ "$got" -eq "$CONTENTION_BUSINESSES" ] || log "warning: streams: contention: $got of $CONTENTION_BUSINESSES businesses have a writable conversation"
    python3 "$HELPER" write-bodies --seed "$SEED" --bodies "$WORK/contention-bodies.jsonl" --csv "$WORK/contention-bodies.csv"
  fi
fi

# Citus: a throw-away cluster (coordinator + 2 workers), the database made on every
# node and migrated as scripts/test-citus.sh and scripts/citus-measure.sh do, every node
# pinned to the server core; then the same data in both databases (`pingback generate`
# is deterministic: same business, counts and seed, same ids).
CITUS_VERSION=""
CITUS_SHARDS=""
if [ "$RUN_CITUS" = 1 ]; then
  log "citus: starting a Citus cluster (scripts/citus.sh: coordinator + 2 workers; Citus built once into target/citus)…"
  citus_env=$("$ROOT/scripts/citus.sh" start) || die "citus: scripts/citus.sh start failed"
  CITUS_DIR=$(sed -n 's/^export PINGBACK_CITUS_DIR=//p' <<<"$citus_env")
  [ -n "$CITUS_DIR" ] && [ -d "$CITUS_DIR" ] || die "citus: scripts/citus.sh start printed no cluster directory"
  citus_port() { cat "$CITUS_DIR/$1/port"; }
  psql_node() { local node=$1; shift; "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U pingback -p "$(citus_port "$node")" "$@"; }
  for node in coordinator worker1 worker2; do
    psql_node "$node" -d postgres -c "CREATE DATABASE pingback_bench" 2>/dev/null # Citus' hint: make it on the workers too
    psql_node "$node" -d pingback_bench -c "CREATE EXTENSION citus"
  done
  psql_node coordinator -d pingback_bench -c "SELECT citus_set_coordinator_host('127.0.0.1', $(citus_port coordinator))" \
    -c "SELECT citus_add_node('127.0.0.1', $(citus_port worker1))" -c "SELECT citus_add_node('127.0.0.1', $(citus_port worker2))" >/dev/null
  CITUS_DB_URL=postgres://pingback@127.0.0.1:$(citus_port coordinator)/pingback_bench
  CITUS_VERSION=$(psql_node coordinator -d pingback_bench -At -c "SELECT split_part(citus_version(), ' ', 2)")
  CITUS_SHARDS=$(psql_node coordinator -d pingback_bench -At -c "SHOW citus.shard_count")
  pin_citus() {
    local node postmaster pid
    for node in coordinator worker1 worker2; do
      postmaster=$(head -n 1 "$CITUS_DIR/$node/data/postmaster.pid")
      for pid in "$postmaster" $(pgrep -P "$postmaster" || true); do
        taskset -apc "$SERVER_CPU" "$pid" >/dev/null
      done
    done
  }
  pin_citus
  # Where the CPU goes, per PostgreSQL instance (benches/bench.py citus report).
  CITUS_POSTMASTERS=()
  echo "{\"single-node\": $(head -n 1 "$PG_DIR/data/postmaster.pid")" >"$WORK/citus-postmasters.json"
  for node in coordinator worker1 worker2; do
    pid=$(head -n 1 "$CITUS_DIR/$node/data/postmaster.pid")
    CITUS_POSTMASTERS+=(--postmaster "$pid")
    echo ", \"$node\": $pid" >>"$WORK/citus-postmasters.json"
  done
  echo "}" >>"$WORK/citus-postmasters.json"
  log "citus: migrating the cluster (pingback migrate distributes the tables by business)…"
  PINGBACK__DATABASE__URL=$CITUS_DB_URL PINGBACK__LOG__LEVEL=info "$PINGBACK" migrate >"$WORK/citus-migrate.log" 2>&1 \
    || { cat "$WORK/citus-migrate.log" >&2; die "citus: pingback migrate failed on the cluster"; }
  grep -qi citus "$WORK/citus-migrate.log" || log "warning: pingback migrate did not mention Citus (see $WORK/citus-migrate.log)"
  distributed=$(psql_node coordinator -d pingback_bench -At -c "SELECT count(*) FROM pg_dist_partition WHERE partmethod = 'h'")
  [ "$distributed" -gt 0 ] || die "citus: no distributed table after pingback migrate"
  log "citus: $distributed tables distributed by business, $CITUS_SHARDS shards each (Citus $CITUS_VERSION)"

  for which in single citus; do
    url=$DB_URL
    [ "$which" = citus ] && url=$CITUS_DB_URL
    log "citus: generating $CITUS_CONVERSATIONS conversations of $CITUS_MESSAGES messages and $((CITUS_WRITE_CONVERSATIONS * 3)) of $CITUS_WRITE_MESSAGES ($which)…"
    start=$(date +%s.%N)
    PINGBACK__DATABASE__URL=$url "$PINGBACK" generate --business-id "$CITUS_READ_BUSINESS" --conversations "$CITUS_CONVERSATIONS" \
      --messages "$CITUS_MESSAGES" --seed "$((SEED + 4))" | grep -E '^[0-9a-fA-F-]{36}$' >"$WORK/citus-ids-$which.txt" \
      || die "pingback generate failed ($which)"
    PINGBACK__DATABASE__URL=$url "$PINGBACK" generate --business-id "$CITUS_WRITE_BUSINESS" \
      --conversations "$((CITUS_WRITE_CONVERSATIONS * 3))" --messages "$CITUS_WRITE_MESSAGES" --seed "$((SEED + 5))" >/dev/null \
      || die "pingback generate failed ($which)"
    log "  done in $(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')") s"
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$url" -At -c "SELECT id FROM conversations WHERE business_id = '$CITUS_WRITE_BUSINESS' AND status <> 'closed' AND assignee_id IS NOT NULL ORDER BY id LIMIT $CITUS_WRITE_CONVERSATIONS" \
      >"$WORK/citus-write-ids-$which.txt"
  done
  got=$(wc -l <"$WORK/citus-ids-single.txt")
  [ "$got" -eq "$CITUS_CONVERSATIONS" ] || die "citus: pingback generate printed $got ids, expected $CITUS_CONVERSATIONS"
  cmp -s "$WORK/citus-ids-single.txt" "$WORK/citus-ids-citus.txt" || die "citus: the two databases got different conversation ids"
  got=$(wc -l <"$WORK/citus-write-ids-single.txt")
  [ "$got" -eq "$CITUS_WRITE_CONVERSATIONS" ] || die "citus: only $got writable conversations, expected $CITUS_WRITE_CONVERSATIONS"
  cmp -s "$WORK/citus-write-ids-single.txt" "$WORK/citus-write-ids-citus.txt" || die "citus: the two databases got different writable conversations"
  cp "$WORK/citus-ids-single.txt" "$WORK/citus-ids.txt"
  cp "$WORK/citus-write-ids-single.txt" "$WORK/citus-write-ids.txt"
  python3 "$HELPER" write-bodies --seed "$SEED" --bodies "$WORK/citus-write-bodies.jsonl" --csv "$WORK/citus-write-bodies.csv"
  "$PINGBACK" token --business-id "$CITUS_READ_BUSINESS" --sub bench --ttl 86400 >"$WORK/citus-token.txt"
  "$PINGBACK" token --business-id "$CITUS_WRITE_BUSINESS" --sub bench-writer --ttl 86400 >"$WORK/citus-write-token.txt"
  # The shards live on the workers: VACUUM ANALYZE every node.
  for node in coordinator worker1 worker2; do
    psql_node "$node" -d pingback_bench -c "VACUUM ANALYZE"
  done
fi

log "VACUUM ANALYZE…"
psql_bench -c "VACUUM ANALYZE"

"$BASELINE" --print-sql >"$WORK/statements.sql"
"$HANDWRITTEN" --print-sql >"$WORK/handwritten-statements.sql"
python3 "$HELPER" pgbench-script --sql "$WORK/statements.sql" >"$WORK/pgbench.sql"

# --- servers ---------------------------------------------------------------------

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# start_server NAME SIZE: starts it on the server core; sets SERVER_PID and SERVER_URL.
start_server() {
  local name=$1 size=$2 port out i
  port=$(free_port)
  out=$WORK/$name-$size
  case $name in
    pingback)
      # As shipped: the bind address is all this adds to the URL and the secret.
      PINGBACK__SERVER__BIND=127.0.0.1:$port \
        taskset -c "$SERVER_CPU" "$PINGBACK" serve >"$out.out" 2>"$out.err" &
      ;;
    pingback-warn)
      # The same, the log level at warn (no access-log line per request).
      PINGBACK__SERVER__BIND=127.0.0.1:$port PINGBACK__LOG__LEVEL=warn \
        taskset -c "$SERVER_CPU" "$PINGBACK" serve >"$out.out" 2>"$out.err" &
      ;;
    baseline)
      DATABASE_URL=$DB_URL BIND=127.0.0.1:$port JWT_SECRET=$SECRET WORKERS=$WORKERS \
        taskset -c "$SERVER_CPU" "$BASELINE" >"$out.out" 2>"$out.err" &
      ;;
    handwritten)
      DATABASE_URL=$DB_URL BIND=127.0.0.1:$port JWT_SECRET=$SECRET WORKERS=$WORKERS \
        taskset -c "$SERVER_CPU" "$HANDWRITTEN" >"$out.out" 2>"$out.err" &
      ;;
  esac
  SERVER_PID=$!
  SERVER_PIDS+=("$SERVER_PID")
  for i in $(seq 1 300); do
    if grep -q '^listening on http://' "$out.out" 2>/dev/null; then
      SERVER_URL=$(grep -m 1 -o 'http://[^ ]*' "$out.out")
      # What the process runs with: its actix worker threads, pingback's read lanes.
      python3 "$HELPER" server-info --pid "$SERVER_PID" --name "$name" --size "$size" \
        $([ "${name%-warn}" = pingback ] && echo --metrics "$SERVER_URL/metrics") >>"$WORK/servers.jsonl" || true
      return 0
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$out.err" >&2; die "$name exited during start-up"; }
    sleep 0.1
  done
  cat "$out.err" >&2
  die "$name did not print 'listening on' within 30 s"
}

# alive NAME PID SIZE: the server still runs, else stop with its exit status and log.
alive() {
  kill -0 "$2" 2>/dev/null && return 0
  local status=0
  wait "$2" || status=$?
  tail -n 20 "$WORK/$1-$3.err" >&2
  [ "$status" -gt 128 ] && die "$1 (pid $2) was killed by signal $((status - 128))"
  die "$1 (pid $2) exited unexpectedly with status $status"
}

stop_server() {
  local pid=$1 keep=() p
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in "${SERVER_PIDS[@]}"; do
    [ "$p" = "$pid" ] || keep+=("$p")
  done
  SERVER_PIDS=("${keep[@]}")
}

# --- runs ------------------------------------------------------------------------

reset_statements() { psql_bench -At -c "SELECT pg_stat_statements_reset()" >/dev/null; }
dump_statements() {
  psql_bench -At -c "SELECT coalesce(json_agg(json_build_object('queryid', queryid::text, 'query', query, 'calls', calls, 'rows', rows, 'total_ms', total_exec_time)), '[]') FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query NOT ILIKE '%pg_stat_statements%'" >"$1"
}

# settle: waits until the running servers and PostgreSQL are idle.
settle() {
  local pid args=()
  for pid in "${SERVER_PIDS[@]}"; do args+=(--pid "$pid"); done
  if [ -n "$CITUS_DIR" ]; then
    for node in coordinator worker1 worker2; do args+=(--postmaster "$(head -n 1 "$CITUS_DIR/$node/data/postmaster.pid")"); done
  fi
  python3 "$HELPER" settle --postmaster "$(head -n 1 "$PG_DIR/data/postmaster.pid")" "${args[@]}"
}

# wrk_run URL SIZE SECONDS OUTPUT: in the background; sets WRK_PID.
wrk_run() {
  taskset -c "$LOAD_CPU" wrk -c "$CONNECTIONS" -t "$THREADS" -d "${3}s" --timeout 30s --latency \
    -s "$LUA" "$1" -- "$WORK/ids-$2.txt" "$(cat "$WORK/token-$2.txt")" >"$4" 2>&1 &
  WRK_PID=$!
}

wrk_wait() { # OUTPUT
  wait "$WRK_PID" || { cat "$1" >&2; die "wrk failed"; }
}

# window OUT [PID]: counters at two points inside the run that has just started.
window() {
  taskset -c "$LOAD_CPU" python3 "$HELPER" window ${2:+--pid "$2"} \
    --postmaster "$(head -n 1 "$PG_DIR/data/postmaster.pid")" --psql "$PG_BIN/psql" --db "$DB_URL" \
    --duration "$DURATION" --skip "$SKIP" --out "$1" || log "warning: no steady-state sample ($1)"
}

# The read scenario's HTTP servers, in the order their runs interleave (then pgbench).
READ_HTTP_SYSTEMS="pingback pingback-warn baseline handwritten"

# measure_http SYSTEM PID URL SIZE REPEAT
measure_http() {
  local system=$1 pid=$2 url=$3 size=$4 repeat=$5 base
  base=$WORK/run-$system-$size-$repeat
  settle
  reset_statements
  python3 "$HELPER" snapshot "$pid" >"$base.before"
  wrk_run "$url" "$size" "$DURATION" "$base.wrk"
  window "$base.window" "$pid"
  wrk_wait "$base.wrk"
  python3 "$HELPER" snapshot "$pid" >"$base.after"
  dump_statements "$base.pgss"
  python3 "$HELPER" record --out "$WORK/runs.jsonl" --system "$system" --size "$size" --repeat "$repeat" \
    --kind wrk --output "$base.wrk" --before "$base.before" --after "$base.after" --pgss "$base.pgss" \
    --window "$base.window" --server-cpu "$SERVER_CPU" --load-cpu "$LOAD_CPU"
}

pgbench_run() { # SIZE COUNT SECONDS OUTPUT [LOGPREFIX]
  local status=0
  # The plans pingback and the baseline ask for on their connections.
  PGOPTIONS="-c plan_cache_mode=force_generic_plan" taskset -c "$LOAD_CPU" "$PG_BIN/pgbench" -n -M prepared -c "$PGBENCH_CLIENTS" -j 1 -T "$3" \
    -D size="$1" -D count="$2" -f "$WORK/pgbench.sql" ${5:+-l --log-prefix="$5"} "$DB_URL" >"$4" 2>&1 || status=$?
  return $status
}

# measure_pgbench SIZE COUNT REPEAT
measure_pgbench() {
  local size=$1 count=$2 repeat=$3 base status=0
  base=$WORK/run-pgbench-$size-$repeat
  settle
  reset_statements
  python3 "$HELPER" snapshot >"$base.before"
  window "$base.window" &
  local window_pid=$!
  pgbench_run "$size" "$count" "$DURATION" "$base.out" "$base.log" || status=$?
  wait "$window_pid" || true
  python3 "$HELPER" snapshot >"$base.after"
  dump_statements "$base.pgss"
  [ "$status" -eq 0 ] || { cat "$base.out" >&2; log "pgbench exited with $status"; }
  python3 "$HELPER" record --out "$WORK/runs.jsonl" --system pgbench --size "$size" --repeat "$repeat" \
    --kind pgbench --output "$base.out" --before "$base.before" --after "$base.after" --pgss "$base.pgss" \
    --pgbench-log-prefix "$base.log" --window "$base.window" --exit-code "$status" --server-cpu "$SERVER_CPU" --load-cpu "$LOAD_CPU"
}

for spec in $SIZES; do
  size=${spec%%:*}
  count=${spec##*:}
  log "size $size: starting servers…"
  declare -A READ_PID=() READ_URL=()
  for system in $READ_HTTP_SYSTEMS; do
    start_server "$system" "$size"
    READ_PID[$system]=$SERVER_PID READ_URL[$system]=$SERVER_URL
  done
  for system in $READ_HTTP_SYSTEMS; do alive "$system" "${READ_PID[$system]}" "$size"; done
  # Both references must answer pingback's bytes (and pingback with the log at warn
  # too: the same binary).
  python3 "$HELPER" check --out "$WORK/checks.jsonl" --pingback "${READ_URL[pingback]}" \
    --baseline "${READ_URL[baseline]}" --handwritten "${READ_URL[handwritten]}" --warn "${READ_URL[pingback-warn]}" \
    --ids "$WORK/ids-$size.txt" --token "$(cat "$WORK/token-$size.txt")" --size "$size" \
    || die "size $size: the servers do not answer as expected (see above)"

  log "size $size: warming up (${WARMUP} s each)…"
  for system in $READ_HTTP_SYSTEMS; do
    settle
    wrk_run "${READ_URL[$system]}" "$size" "$WARMUP" "$WORK/warmup-$system-$size.wrk"
    wrk_wait "$WORK/warmup-$system-$size.wrk"
  done
  settle
  pgbench_run "$size" "$count" "$WARMUP" "$WORK/warmup-pgbench-$size.out" \
    || { cat "$WORK/warmup-pgbench-$size.out" >&2; die "pgbench failed"; }

  for repeat in $(seq 1 "$REPEATS"); do
    for system in $READ_HTTP_SYSTEMS; do
      measure_http "$system" "${READ_PID[$system]}" "${READ_URL[$system]}" "$size" "$repeat"
    done
    measure_pgbench "$size" "$count" "$repeat"
    for system in $READ_HTTP_SYSTEMS; do alive "$system" "${READ_PID[$system]}" "$size"; done
  done

  for system in $READ_HTTP_SYSTEMS; do
    python3 "$HELPER" peak --out "$WORK/peaks.jsonl" --system "$system" --size "$size" --pid "${READ_PID[$system]}"
  done
  for system in $READ_HTTP_SYSTEMS; do stop_server "${READ_PID[$system]}"; done
  unset READ_PID READ_URL
done

# --- writes ----------------------------------------------------------------------

# write_wrk_run URL SECONDS OUTPUT [KEY_PREFIX]: in the background; sets WRK_PID.
write_wrk_run() {
  taskset -c "$LOAD_CPU" wrk -c "$CONNECTIONS" -t "$THREADS" -d "${2}s" --timeout 30s --latency \
    -s "$WRITE_LUA" "$1" -- "$WORK/write-ids.txt" "$(cat "$WORK/write-token.txt")" "$WORK/write-bodies.jsonl" \
    "${4:-}" >"$3" 2>&1 &
  WRK_PID=$!
}

# write_pgbench_run SYSTEM SECONDS OUTPUT [LOGPREFIX]: SYSTEM pgbench (the transaction
# without the event log's statements) or pgbench-events (with them, as pingback runs it).
#   With events, one more client numbers the staged events meanwhile, back to back
#   (benches/pgbench/number_events.sql), as pingback's writers have it done after commit.
write_pgbench_run() {
  local status=0 script=$WRITE_PGBENCH numbering=""
  if [ "$1" = pgbench-events ]; then
    script=$WRITE_EVENTS_PGBENCH
    PGOPTIONS="-c plan_cache_mode=force_generic_plan" taskset -c "$LOAD_CPU" "$PG_BIN/pgbench" -n -M prepared -c 1 -j 1 -T "$2" \
      -D bid="$WRITE_BUSINESS" -f "$WRITE_NUMBERING_PGBENCH" "$DB_URL" >"$3.numbering" 2>&1 &
    numbering=$!
  fi
  PGOPTIONS="-c plan_cache_mode=force_generic_plan" taskset -c "$LOAD_CPU" "$PG_BIN/pgbench" -n -M prepared -c "$PGBENCH_CLIENTS" -j 1 -T "$2" \
    -D conversations="$WRITE_CONVERSATIONS" -D bodies="$(wc -l <"$WORK/write-bodies.jsonl")" \
    -D events="$(cat "$WORK/write-events.txt")" \
    -f "$script" ${4:+-l --log-prefix="$4"} "$DB_URL" >"$3" 2>&1 || status=$?
  if [ -n "$numbering" ]; then
    wait "$numbering" || { cat "$3.numbering" >&2; status=1; }
  fi
  return $status
}

# measure_write SYSTEM PID URL REPEAT: SYSTEM pingback (no key) or pingback-key.
measure_write() {
  local system=$1 pid=$2 url=$3 repeat=$4 base prefix=""
  base=$WORK/write-$system-$repeat
  [ "$system" = pingback-key ] && prefix="bench-$(date +%s%N)-$repeat"
  settle
  reset_statements
  python3 "$HELPER" snapshot "$pid" >"$base.before"
  write_wrk_run "$url" "$DURATION" "$base.wrk" "$prefix"
  window "$base.window" "$pid"
  wrk_wait "$base.wrk"
  python3 "$HELPER" snapshot "$pid" >"$base.after"
  dump_statements "$base.pgss"
  python3 "$HELPER" record --out "$WORK/write-runs.jsonl" --system "$system" --size "$WRITE_MESSAGES" --repeat "$repeat" \
    --kind wrk --output "$base.wrk" --before "$base.before" --after "$base.after" --pgss "$base.pgss" \
    --window "$base.window" --server-cpu "$SERVER_CPU" --load-cpu "$LOAD_CPU"
}

measure_write_pgbench() { # SYSTEM REPEAT
  local system=$1 repeat=$2 base status=0
  base=$WORK/write-$system-$repeat
  settle
  reset_statements
  python3 "$HELPER" snapshot >"$base.before"
  window "$base.window" &
  local window_pid=$!
  write_pgbench_run "$system" "$DURATION" "$base.out" "$base.log" || status=$?
  wait "$window_pid" || true
  python3 "$HELPER" snapshot >"$base.after"
  dump_statements "$base.pgss"
  [ "$status" -eq 0 ] || { cat "$base.out" >&2; log "pgbench exited with $status"; }
  python3 "$HELPER" record --out "$WORK/write-runs.jsonl" --system "$system" --size "$WRITE_MESSAGES" --repeat "$repeat" \
    --kind pgbench --output "$base.out" --before "$base.before" --after "$base.after" --pgss "$base.pgss" \
    --pgbench-log-prefix "$base.log" --window "$base.window" --exit-code "$status" --server-cpu "$SERVER_CPU" --load-cpu "$LOAD_CPU"
}

if [ "$RUN_WRITES" = 1 ]; then
  log "writes: starting pingback…"
  start_server pingback writes
  PB_PID=$SERVER_PID PB_URL=$SERVER_URL
  alive pingback "$PB_PID" writes
  # One message to every conversation (sets first_response_at, which the pgbench
  # transaction binds), checked; and one idempotent replay.
  python3 "$HELPER" write-check --out "$WORK/write-check.json" --url "$PB_URL" --ids "$WORK/write-ids.txt" \
    --token "$(cat "$WORK/write-token.txt")" --bodies "$WORK/write-bodies.jsonl" \
    || die "writes: pingback does not answer as expected (see above)"
  # The event data pgbench-events inserts: the message.created events pingback wrote in
  # the check (one per conversation, real sizes), picked at random per transaction.
  psql_bench -c "CREATE TABLE write_bench_events (n integer PRIMARY KEY, data text NOT NULL)"
  psql_bench -c "INSERT INTO write_bench_events SELECT row_number() OVER (ORDER BY id), data FROM events WHERE business_id = '$WRITE_BUSINESS' AND type = 'message.created'"
  psql_bench -At -c "SELECT count(*) FROM write_bench_events" >"$WORK/write-events.txt"
  [ "$(cat "$WORK/write-events.txt")" -gt 0 ] || die "writes: pingback wrote no message.created event in the check"
  psql_bench -At -c "SELECT json_build_object('events', count(*), 'min_bytes', min(octet_length(data)), 'median_bytes', percentile_cont(0.5) WITHIN GROUP (ORDER BY octet_length(data)), 'max_bytes', max(octet_length(data))) FROM write_bench_events" \
    >"$WORK/write-events.json"
  psql_bench -c "ANALYZE write_bench_events"
  WRITE_SYSTEMS="pingback"
  [ "$WRITE_IDEMPOTENT" = 1 ] && WRITE_SYSTEMS="pingback pingback-key"

  log "writes: warming up (${WARMUP} s each)…"
  for system in $WRITE_SYSTEMS; do
    settle
    prefix=""
    [ "$system" = pingback-key ] && prefix="warmup-$(date +%s%N)"
    write_wrk_run "$PB_URL" "$WARMUP" "$WORK/warmup-write-$system.wrk" "$prefix"
    wrk_wait "$WORK/warmup-write-$system.wrk"
    alive pingback "$PB_PID" writes
  done
  for system in pgbench pgbench-events; do
    settle
    write_pgbench_run "$system" "$WARMUP" "$WORK/warmup-write-$system.out" \
      || { cat "$WORK/warmup-write-$system.out" >&2; die "$system (writes) failed"; }
  done

  for repeat in $(seq 1 "$WRITE_REPEATS"); do
    for system in $WRITE_SYSTEMS; do
      measure_write "$system" "$PB_PID" "$PB_URL" "$repeat"
    done
    measure_write_pgbench pgbench "$repeat"
    measure_write_pgbench pgbench-events "$repeat"
    alive pingback "$PB_PID" writes
  done
  psql_bench -At -c "SELECT count(*) FROM messages WHERE business_id = '$WRITE_BUSINESS' AND conversation_id IN (SELECT id FROM write_bench_ids)" \
    >"$WORK/write-messages-after.txt"
  python3 "$HELPER" peak --out "$WORK/write-peaks.jsonl" --system pingback --size "$WRITE_MESSAGES" --pid "$PB_PID"
  stop_server "$PB_PID"
fi

# --- list ------------------------------------------------------------------------

# list_wrk_run PATH_FILE SECONDS OUTPUT: in the background; sets WRK_PID.
list_wrk_run() {
  taskset -c "$LOAD_CPU" wrk -c "$CONNECTIONS" -t "$THREADS" -d "${2}s" --timeout 30s --latency \
    -s "$LIST_LUA" "$PB_URL" -- "$1" "$(cat "$WORK/list-token.txt")" >"$3" 2>&1 &
  WRK_PID=$!
}

list_pgbench_run() { # SECONDS OUTPUT [LOGPREFIX]
  local status=0
  # The deep page's bound values (benches/bench.py list-prepare).
  PGOPTIONS="-c plan_cache_mode=force_generic_plan" taskset -c "$LOAD_CPU" "$PG_BIN/pgbench" -n -M prepared -c "$PGBENCH_CLIENTS" -j 1 -T "$1" \
    $(cat "$WORK/list-pgbench-vars.txt") -f "$LIST_PGBENCH" ${3:+-l --log-prefix="$3"} "$DB_URL" >"$2" 2>&1 || status=$?
  return $status
}

# measure_list SYSTEM REPEAT: SYSTEM first (page 1) or deep.
measure_list() {
  local system=$1 repeat=$2 base
  base=$WORK/list-$system-$repeat
  settle
  reset_statements
  python3 "$HELPER" snapshot "$PB_PID" >"$base.before"
  list_wrk_run "$WORK/list-path-$system.txt" "$DURATION" "$base.wrk"
  window "$base.window" "$PB_PID"
  wrk_wait "$base.wrk"
  python3 "$HELPER" snapshot "$PB_PID" >"$base.after"
  dump_statements "$base.pgss"
  python3 "$HELPER" record --out "$WORK/list-runs.jsonl" --system "pingback-$system" --size "$LIST_LIMIT" --repeat "$repeat" \
    --kind wrk --output "$base.wrk" --before "$base.before" --after "$base.after" --pgss "$base.pgss" \
    --window "$base.window" --server-cpu "$SERVER_CPU" --load-cpu "$LOAD_CPU"
}

measure_list_pgbench() { # REPEAT
  local repeat=$1 base status=0
  base=$WORK/list-pgbench-$repeat
  settle
  reset_statements
  python3 "$HELPER" snapshot >"$base.before"
  window "$base.window" &
  local window_pid=$!
  list_pgbench_run "$DURATION" "$base.out" "$base.log" || status=$?
  wait "$window_pid" || true
  python3 "$HELPER" snapshot >"$base.after"
  dump_statements "$base.pgss"
  [ "$status" -eq 0 ] || { cat "$base.out" >&2; log "pgbench exited with $status"; }
  python3 "$HELPER" record --out "$WORK/list-runs.jsonl" --system pgbench --size "$LIST_LIMIT" --repeat "$repeat" \
    --kind pgbench --output "$base.out" --before "$base.before" --after "$base.after" --pgss "$base.pgss" \
    --pgbench-log-prefix "$base.log" --window "$base.window" --exit-code "$status" --server-cpu "$SERVER_CPU" --load-cpu "$LOAD_CPU"
}

if [ "$RUN_LIST" = 1 ]; then
  log "list: starting pingback…"
  start_server pingback list
  PB_PID=$SERVER_PID PB_URL=$SERVER_URL
  alive pingback "$PB_PID" list
  # The first page; the cursor LIST_DEPTH deep (paging with limit=LIST_PAGE); the deep
  # page; their checks; the deep page's bound values for pgbench.
  reset_statements
  python3 "$HELPER" list-prepare --url "$PB_URL" --token "$(cat "$WORK/list-token.txt")" --limit "$LIST_LIMIT" \
    --page "$LIST_PAGE" --depth "$LIST_DEPTH" --business "$LIST_BUSINESS" --work "$WORK" \
    --psql "$PG_BIN/psql" --db "$DB_URL" \
    || die "list: pingback does not answer as expected (see above)"
  dump_statements "$WORK/list-prepare.pgss"

  log "list: warming up (${WARMUP} s each)…"
  for system in first deep; do
    settle
    list_wrk_run "$WORK/list-path-$system.txt" "$WARMUP" "$WORK/warmup-list-$system.wrk"
    wrk_wait "$WORK/warmup-list-$system.wrk"
    alive pingback "$PB_PID" list
  done
  settle
  list_pgbench_run "$WARMUP" "$WORK/warmup-list-pgbench.out" \
    || { cat "$WORK/warmup-list-pgbench.out" >&2; die "pgbench (list) failed"; }

  for repeat in $(seq 1 "$REPEATS"); do
    measure_list first "$repeat"
    measure_list deep "$repeat"
    measure_list_pgbench "$repeat"
    alive pingback "$PB_PID" list
  done
  python3 "$HELPER" peak --out "$WORK/list-peaks.jsonl" --system pingback --size "$LIST_LIMIT" --pid "$PB_PID"
  stop_server "$PB_PID"
fi

# --- webhooks --------------------------------------------------------------------

if [ "$RUN_WEBHOOKS" = 1 ]; then
  log "webhooks: starting the sink and pingback…"
  sink_out=$WORK/webhook-sink
  taskset -c "$LOAD_CPU" "$SINK" --port 0 --expect "$WEBHOOK_EVENTS" --arrivals "$WORK/webhook-arrivals.txt" \
    >"$sink_out.out" 2>"$sink_out.err" &
  SINK_PID=$!
  SERVER_PIDS+=("$SINK_PID")
  for i in $(seq 1 100); do
    grep -q '^listening on http://' "$sink_out.out" 2>/dev/null && break
    kill -0 "$SINK_PID" 2>/dev/null || { cat "$sink_out.err" >&2; die "the webhook sink exited during start-up"; }
    sleep 0.1
  done
  SINK_URL=$(grep -m 1 -o 'http://[^ ]*' "$sink_out.out") || die "the webhook sink did not print 'listening on' within 10 s"
  # As shipped, except that the endpoint may be http://127.0.0.1 (development settings).
  PINGBACK__WEBHOOKS__ALLOW_HTTP=true PINGBACK__WEBHOOKS__ALLOW_PRIVATE_NETWORKS=true start_server pingback webhooks
  PB_PID=$SERVER_PID PB_URL=$SERVER_URL
  alive pingback "$PB_PID" webhooks
  "$PINGBACK" token --business-id "$WEBHOOK_BUSINESS" --sub bench --ttl 86400 >"$WORK/webhook-token.txt"
  WEBHOOK_ID=$(python3 "$HELPER" webhook-register --url "$PB_URL" --token "$(cat "$WORK/webhook-token.txt")" \
    --sink "$SINK_URL/hook" --out "$WORK/webhook-endpoint.json") || die "webhooks: registering the sink failed"
  # The endpoint delivers the events after its position at registration.
  base=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["delivered_through"])' "$WORK/webhook-endpoint.json")
  stored=$(psql_bench -At -c "SELECT coalesce(max(id), 0) FROM events WHERE business_id = '$WEBHOOK_BUSINESS'")
  [ "$base" = "$stored" ] || die "webhooks: delivered_through $base at registration, but the business's last event is $stored"
  log "webhooks: endpoint $WEBHOOK_ID → $SINK_URL/hook (delivered_through $base)"

  settle
  reset_statements
  POSTMASTER=$(head -n 1 "$PG_DIR/data/postmaster.pid")
  python3 "$HELPER" snapshot "$PB_PID" --postmaster "$POSTMASTER" >"$WORK/webhook.before"
  log "webhooks: generating $WEBHOOK_EVENTS conversations of 1 message (one event each) and delivering them…"
  gen_start=$(date +%s.%N)
  taskset -c "$LOAD_CPU" "$PINGBACK" generate --business-id "$WEBHOOK_BUSINESS" --conversations "$WEBHOOK_EVENTS" \
    --messages 1 --seed "$((SEED + 3))" >/dev/null 2>"$WORK/webhook-generate.err" \
    || { cat "$WORK/webhook-generate.err" >&2; die "pingback generate failed"; }
  gen_end=$(date +%s.%N)
  dump_statements "$WORK/webhook-gen.pgss"
  log "  generated in $(python3 -c "print(f'{$gen_end - $gen_start:.2f}')") s"
  psql_bench -At -c "SELECT count(*) || '|' || coalesce(min(id), 0) || '|' || coalesce(max(id), 0) FROM events WHERE business_id = '$WEBHOOK_BUSINESS' AND id > $base" \
    >"$WORK/webhook-events.txt"
  IFS='|' read -r written first_event last_event <"$WORK/webhook-events.txt"
  [ "$written" -eq "$WEBHOOK_EVENTS" ] && [ "$first_event" -eq $((base + 1)) ] && [ "$last_event" -eq $((base + WEBHOOK_EVENTS)) ] \
    || die "webhooks: pingback generate wrote $written events (ids $first_event–$last_event), expected $WEBHOOK_EVENTS ($((base + 1))–$((base + WEBHOOK_EVENTS)))"

  taskset -c "$LOAD_CPU" python3 "$HELPER" webhook-wait --sink-out "$sink_out.out" --url "$PB_URL" \
    --token "$(cat "$WORK/webhook-token.txt")" --webhook "$WEBHOOK_ID" --last "$last_event" --started "$gen_start" \
    --timeout "$WEBHOOK_TIMEOUT" --pid "$PB_PID" --sink-pid "$SINK_PID" --postmaster "$POSTMASTER" --out "$WORK/webhook-wait.json"
  dump_statements "$WORK/webhook.pgss"
  psql_bench -At -c "SELECT coalesce(json_agg(json_build_object('table', relname, 'autovacuum', extract(epoch FROM last_autovacuum), 'autoanalyze', extract(epoch FROM last_autoanalyze))), '[]') FROM pg_stat_user_tables" \
    >"$WORK/webhook-autovacuum.json"
  alive pingback "$PB_PID" webhooks
  stop_server "$SINK_PID" # SIGTERM: the sink prints its final summary and writes its arrivals
  stop_server "$PB_PID"
  python3 "$HELPER" webhook-record --sink-out "$sink_out.out" --arrivals "$WORK/webhook-arrivals.txt" \
    --wait "$WORK/webhook-wait.json" --before "$WORK/webhook.before" --pgss-gen "$WORK/webhook-gen.pgss" \
    --pgss "$WORK/webhook.pgss" --autovacuum "$WORK/webhook-autovacuum.json" --events-check "$WORK/webhook-events.txt" --base "$base" --events "$WEBHOOK_EVENTS" \
    --gen-start "$gen_start" --gen-end "$gen_end" --server-cpu "$SERVER_CPU" --load-cpu "$LOAD_CPU" \
    --out "$WORK/webhook-run.json"
fi

# --- streams ---------------------------------------------------------------------

# contention_wrk_run WHICH URL SECONDS OUTPUT: WHICH one or spread; in the background;
# sets WRK_PID.
contention_wrk_run() {
  taskset -c "$LOAD_CPU" wrk -c "$CONNECTIONS" -t "$THREADS" -d "${3}s" --timeout 30s --latency \
    -s "$WRITE_LUA" "$2" -- "$WORK/contention-$1-ids.txt" "$(cat "$WORK/contention-one-token.txt")" \
    "$WORK/contention-bodies.jsonl" >"$4" 2>&1 &
  WRK_PID=$!
}

if [ "$RUN_STREAMS" = 1 ]; then
  log "streams: starting pingback…"
  start_server pingback streams
  PB_PID=$SERVER_PID PB_URL=$SERVER_URL
  alive pingback "$PB_PID" streams
  # One message to each conversation posted to (as the write scenario does), checked.
  python3 "$HELPER" write-check --out "$WORK/stream-write-check.json" --url "$PB_URL" --ids "$WORK/stream-ids.txt" \
    --token "$(cat "$WORK/stream-token.txt")" --bodies "$WORK/stream-bodies.jsonl" \
    || die "streams: pingback does not answer as expected (see above)"
  stream_after=$(psql_bench -At -c "SELECT coalesce(max(id), 0) FROM events WHERE business_id = '$STREAM_BUSINESS'")
  settle
  POSTMASTER=$(head -n 1 "$PG_DIR/data/postmaster.pid")
  python3 "$HELPER" rss "$PB_PID" >"$WORK/stream-rss-idle.json"
  log "streams: opening $STREAMS streams, then $STREAM_POSTS posts at $STREAM_RATE/s…"
  python3 "$HELPER" snapshot "$PB_PID" --postmaster "$POSTMASTER" >"$WORK/stream.before"
  taskset -c "$LOAD_CPU" "$STREAM_CLIENT" --url "$PB_URL" --token "$(cat "$WORK/stream-token.txt")" --streams "$STREAMS" \
    --conversations "$WORK/stream-ids.txt" --bodies "$WORK/stream-bodies.jsonl" --after "$stream_after" \
    --posts "$STREAM_POSTS" --rate "$STREAM_RATE" --hold "$STREAM_HOLD" --wait 10 \
    >"$WORK/stream-client.out" 2>"$WORK/stream-client.err" &
  CLIENT_PID=$!
  SERVER_PIDS+=("$CLIENT_PID")
  for i in $(seq 1 1200); do
    grep -q '^open ' "$WORK/stream-client.out" 2>/dev/null && break
    kill -0 "$CLIENT_PID" 2>/dev/null || { cat "$WORK/stream-client.err" >&2; die "streams: the client exited before the streams were open"; }
    sleep 0.1
  done
  grep -q '^open ' "$WORK/stream-client.out" || die "streams: the streams were not open within 120 s"
  # Halfway through the client's hold: every stream open, none sent anything yet.
  sleep "$(awk -v h="$STREAM_HOLD" 'BEGIN { print h / 2 }')"
  python3 "$HELPER" rss "$PB_PID" >"$WORK/stream-rss-open.json"
  python3 "$HELPER" snapshot "$PB_PID" --postmaster "$POSTMASTER" >"$WORK/stream.open"
  wait "$CLIENT_PID" || { cat "$WORK/stream-client.err" >&2; die "streams: the client failed"; }
  stop_server "$CLIENT_PID"
  python3 "$HELPER" snapshot "$PB_PID" --postmaster "$POSTMASTER" >"$WORK/stream.after"
  python3 "$HELPER" rss "$PB_PID" >"$WORK/stream-rss-end.json"
  alive pingback "$PB_PID" streams
  stop_server "$PB_PID"
  python3 "$HELPER" stream-record --client "$WORK/stream-client.out" --idle "$WORK/stream-rss-idle.json" \
    --open "$WORK/stream-rss-open.json" --end "$WORK/stream-rss-end.json" --before "$WORK/stream.before" \
    --opened "$WORK/stream.open" --after "$WORK/stream.after" --out "$WORK/stream-run.json"

  if [ "$CONTENTION" = 1 ]; then
    log "streams: contention: writes to one business vs spread over $CONTENTION_BUSINESSES…"
    start_server pingback contention
    PB_PID=$SERVER_PID PB_URL=$SERVER_URL
    alive pingback "$PB_PID" contention
    for which in one spread; do
      settle
      contention_wrk_run "$which" "$PB_URL" "$WARMUP" "$WORK/warmup-contention-$which.wrk"
      wrk_wait "$WORK/warmup-contention-$which.wrk"
    done
    for repeat in $(seq 1 "$REPEATS"); do
      for which in one spread; do
        base=$WORK/contention-$which-$repeat
        settle
        echo "[]" >"$base.pgss"
        python3 "$HELPER" snapshot "$PB_PID" >"$base.before"
        contention_wrk_run "$which" "$PB_URL" "$DURATION" "$base.wrk"
        wrk_wait "$base.wrk"
        python3 "$HELPER" snapshot "$PB_PID" >"$base.after"
        python3 "$HELPER" record --out "$WORK/contention-runs.jsonl" --system "$which" --size 10 --repeat "$repeat" \
          --kind wrk --output "$base.wrk" --before "$base.before" --after "$base.after" --pgss "$base.pgss" \
          --server-cpu "$SERVER_CPU" --load-cpu "$LOAD_CPU"
      done
      alive pingback "$PB_PID" contention
    done
    stop_server "$PB_PID"
  fi
fi

# --- citus -----------------------------------------------------------------------

# citus_wrk_run KIND URL SECONDS OUTPUT: KIND read or write; in the background; sets
# WRK_PID.
citus_wrk_run() {
  local kind=$1 url=$2 seconds=$3 output=$4
  if [ "$kind" = read ]; then
    taskset -c "$LOAD_CPU" wrk -c "$CONNECTIONS" -t "$THREADS" -d "${seconds}s" --timeout 30s --latency \
      -s "$LUA" "$url" -- "$WORK/citus-ids.txt" "$(cat "$WORK/citus-token.txt")" >"$output" 2>&1 &
  else
    taskset -c "$LOAD_CPU" wrk -c "$CONNECTIONS" -t "$THREADS" -d "${seconds}s" --timeout 30s --latency \
      -s "$WRITE_LUA" "$url" -- "$WORK/citus-write-ids.txt" "$(cat "$WORK/citus-write-token.txt")" \
      "$WORK/citus-write-bodies.jsonl" >"$output" 2>&1 &
  fi
  WRK_PID=$!
}

# measure_citus KIND SYSTEM PID URL REPEAT: SYSTEM single-node or citus. CPU on the
# server core (pingback and every PostgreSQL instance) over the whole run.
measure_citus() {
  local kind=$1 system=$2 pid=$3 url=$4 repeat=$5 base size=$CITUS_MESSAGES
  [ "$kind" = write ] && size=$CITUS_WRITE_MESSAGES
  base=$WORK/citus-$kind-$system-$repeat
  settle
  echo "[]" >"$base.pgss" # no pg_stat_statements on the cluster: none on either side
  snap=(snapshot "$pid" --postmaster "$(head -n 1 "$PG_DIR/data/postmaster.pid")" "${CITUS_POSTMASTERS[@]}")
  python3 "$HELPER" "${snap[@]}" >"$base.before"
  citus_wrk_run "$kind" "$url" "$DURATION" "$base.wrk"
  wrk_wait "$base.wrk"
  python3 "$HELPER" "${snap[@]}" >"$base.after"
  python3 "$HELPER" record --out "$WORK/citus-$kind-runs.jsonl" --system "$system" --size "$size" --repeat "$repeat" \
    --kind wrk --output "$base.wrk" --before "$base.before" --after "$base.after" --pgss "$base.pgss" \
    --server-cpu "$SERVER_CPU" --load-cpu "$LOAD_CPU"
}

if [ "$RUN_CITUS" = 1 ]; then
  log "citus: starting pingback on the single node and on the cluster…"
  start_server pingback citus-single
  SN_PID=$SERVER_PID SN_URL=$SERVER_URL
  PINGBACK__DATABASE__URL=$CITUS_DB_URL start_server pingback citus-cluster
  CT_PID=$SERVER_PID CT_URL=$SERVER_URL
  alive pingback "$SN_PID" citus-single
  alive pingback "$CT_PID" citus-cluster
  # The same answers from both (same data), then one message to every writable
  # conversation of each (as the write scenario does) and an idempotent replay.
  python3 "$HELPER" check --out "$WORK/citus-check.jsonl" --pingback "$SN_URL" --baseline "$CT_URL" \
    --ids "$WORK/citus-ids.txt" --token "$(cat "$WORK/citus-token.txt")" --size "$CITUS_MESSAGES" \
    || die "citus: pingback does not answer as expected on one of the databases (see above)"
  for system in single-node citus; do
    url=$SN_URL
    [ "$system" = citus ] && url=$CT_URL
    python3 "$HELPER" write-check --out "$WORK/citus-write-check-$system.json" --url "$url" --ids "$WORK/citus-write-ids.txt" \
      --token "$(cat "$WORK/citus-write-token.txt")" --bodies "$WORK/citus-write-bodies.jsonl" \
      || die "citus: POST message does not answer as expected ($system; see above)"
  done
  # Backends started since the pinning inherit it; pin again anyway (cheap).
  pin_citus
  pin_postgres

  log "citus: warming up (${WARMUP} s each)…"
  for kind in read write; do
    for system in single-node citus; do
      url=$SN_URL
      [ "$system" = citus ] && url=$CT_URL
      settle
      citus_wrk_run "$kind" "$url" "$WARMUP" "$WORK/warmup-citus-$kind-$system.wrk"
      wrk_wait "$WORK/warmup-citus-$kind-$system.wrk"
    done
  done
  alive pingback "$SN_PID" citus-single
  alive pingback "$CT_PID" citus-cluster

  for repeat in $(seq 1 "$REPEATS"); do
    for kind in read write; do
      measure_citus "$kind" single-node "$SN_PID" "$SN_URL" "$repeat"
      measure_citus "$kind" citus "$CT_PID" "$CT_URL" "$repeat"
    done
    alive pingback "$SN_PID" citus-single
    alive pingback "$CT_PID" citus-cluster
  done
  # The event log's cost on the cluster, under contention: the write scenario's two
  # pgbench transactions (without the event statement; with it, while one more client
  # numbers the staged events) on the coordinator, against the write business's
  # conversations, interleaved. The helper tables are local to the coordinator.
  log "citus: the event log's cost on the cluster (pgbench with and without events)…"
  awk -v business="$CITUS_WRITE_BUSINESS" '{ printf "%d,%s,%s\n", NR, business, $1 }' "$WORK/citus-write-ids.txt" \
    >"$WORK/citus-write-ids.csv"
  psql_node coordinator -d pingback_bench \
    -c "CREATE TABLE write_bench_ids (n integer PRIMARY KEY, business_id uuid NOT NULL, id uuid NOT NULL)" \
    -c "CREATE TABLE write_bench_bodies (n integer PRIMARY KEY, sender_id uuid NOT NULL, content text NOT NULL)" \
    -c "\\copy write_bench_ids FROM '$WORK/citus-write-ids.csv' WITH (FORMAT csv)" \
    -c "\\copy write_bench_bodies FROM '$WORK/citus-write-bodies.csv' WITH (FORMAT csv)" \
    -c "CREATE TABLE write_bench_events (n integer PRIMARY KEY, data text NOT NULL)" >/dev/null
  psql_node coordinator -d pingback_bench -At -c "SELECT data FROM events WHERE business_id = '$CITUS_WRITE_BUSINESS' AND type = 'message.created' LIMIT 200" \
    | python3 -c 'import csv, sys; w = csv.writer(sys.stdout); [w.writerow((n, l.rstrip("\n"))) for n, l in enumerate(sys.stdin, 1)]' \
    >"$WORK/citus-write-events.csv"
  psql_node coordinator -d pingback_bench -c "\\copy write_bench_events FROM '$WORK/citus-write-events.csv' WITH (FORMAT csv)" >/dev/null
  citus_events=$(wc -l <"$WORK/citus-write-events.csv")
  [ "$citus_events" -gt 0 ] || die "citus: pingback wrote no message.created event on the cluster"
  citus_pgbench() { # SYSTEM SECONDS OUTPUT: pgbench or pgbench-events, on the coordinator
    local numbering="" status=0 script=$WRITE_PGBENCH
    if [ "$1" = pgbench-events ]; then
      script=$CITUS_WRITE_EVENTS_PGBENCH
      taskset -c "$LOAD_CPU" "$PG_BIN/pgbench" -n -M prepared -c 1 -j 1 -T "$2" -D bid="$CITUS_WRITE_BUSINESS" \
        -f "$CITUS_WRITE_NUMBERING_PGBENCH" "$CITUS_DB_URL" >"$3.numbering" 2>&1 &
      numbering=$!
    fi
    taskset -c "$LOAD_CPU" "$PG_BIN/pgbench" -n -M prepared -c "$PGBENCH_CLIENTS" -j 1 -T "$2" \
      -D conversations="$(wc -l <"$WORK/citus-write-ids.txt")" -D bodies="$(wc -l <"$WORK/citus-write-bodies.csv")" \
      -D events="$citus_events" -f "$script" "$CITUS_DB_URL" >"$3" 2>&1 || status=$?
    if [ -n "$numbering" ]; then wait "$numbering" || status=1; fi
    [ "$status" -eq 0 ] || { cat "$3" "$3.numbering" >&2 2>/dev/null; die "citus: $1 failed"; }
    python3 -c 'import json, re, sys; m = re.search(r"^tps = ([0-9.]+)", open(sys.argv[1]).read(), re.M); print(json.dumps({"system": sys.argv[2], "repeat": int(sys.argv[3]), "tps": float(m.group(1)) if m else None}))' \
      "$3" "$1" "${4:-0}" >>"$WORK/citus-pgbench.jsonl"
  }
  for system in pgbench pgbench-events; do
    settle
    citus_pgbench "$system" "$WARMUP" "$WORK/warmup-citus-$system.out" 0
  done
  : >"$WORK/citus-pgbench.jsonl"
  for repeat in $(seq 1 "$REPEATS"); do
    for system in pgbench pgbench-events; do
      settle
      citus_pgbench "$system" "$DURATION" "$WORK/citus-$system-$repeat.out" "$repeat"
    done
  done
  # The read as the cluster plans it (tests/citus.rs proves every hot-path statement
  # single-shard; this is the read's, for the record).
  first_id=$(head -n 1 "$WORK/citus-ids.txt")
  psql_node coordinator -d pingback_bench -c "EXPLAIN (COSTS OFF) SELECT * FROM messages WHERE business_id = '$CITUS_READ_BUSINESS' AND conversation_id = '$first_id'" \
    >"$WORK/citus-explain.txt" 2>&1 || true
  python3 "$HELPER" peak --out "$WORK/citus-peaks.jsonl" --system single-node --size "$CITUS_MESSAGES" --pid "$SN_PID"
  python3 "$HELPER" peak --out "$WORK/citus-peaks.jsonl" --system citus --size "$CITUS_MESSAGES" --pid "$CT_PID"
  stop_server "$SN_PID"
  stop_server "$CT_PID"
fi

# --- report ----------------------------------------------------------------------

GIT_REV=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain 2>/dev/null | head -n 1)" ]; then GIT_REV="$GIT_REV (with uncommitted changes)"; fi
cat >"$WORK/meta.json" <<EOF
{
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "git": "$GIT_REV",
  "postgresql": "PostgreSQL $PG_VERSION",
  "quick": $([ "$QUICK" = 1 ] && echo true || echo false),
  "duration_s": $DURATION,
  "repeats": $REPEATS,
  "write_repeats": $WRITE_REPEATS,
  "warmup_s": $WARMUP,
  "skip_s": $SKIP,
  "connections": $CONNECTIONS,
  "threads": $THREADS,
  "pgbench_clients": $PGBENCH_CLIENTS,
  "load_cpu": $LOAD_CPU,
  "server_cpu": $SERVER_CPU,
  "reference_workers": $WORKERS,
  "data": $DATA_JSON,
  "conversations": $CONVERSATIONS_JSON,
  "scenarios": "$SCENARIOS",
  "write_conversations": $WRITE_CONVERSATIONS,
  "write_messages": $WRITE_MESSAGES,
  "write_business": "$WRITE_BUSINESS",
  "list_business": "$LIST_BUSINESS",
  "list_conversations": $LIST_CONVERSATIONS,
  "list_messages": $LIST_MESSAGES,
  "list_depth": $LIST_DEPTH,
  "list_limit": $LIST_LIMIT,
  "list_page": $LIST_PAGE,
  "webhook_business": "$WEBHOOK_BUSINESS",
  "webhook_events": $WEBHOOK_EVENTS,
  "webhook_timeout": $WEBHOOK_TIMEOUT,
  "citus_version": "$CITUS_VERSION",
  "citus_shard_count": ${CITUS_SHARDS:-null},
  "citus_conversations": $CITUS_CONVERSATIONS,
  "citus_messages": $CITUS_MESSAGES,
  "citus_write_conversations": $CITUS_WRITE_CONVERSATIONS,
  "citus_write_messages": $CITUS_WRITE_MESSAGES,
  "citus_read_business": "$CITUS_READ_BUSINESS",
  "citus_write_business": "$CITUS_WRITE_BUSINESS",
  "streams": $STREAMS,
  "stream_posts": $STREAM_POSTS,
  "stream_rate": $STREAM_RATE,
  "stream_hold": $STREAM_HOLD,
  "stream_business": "$STREAM_BUSINESS",
  "contention_businesses": $CONTENTION_BUSINESSES,
  "contention_conversations": $CONTENTION_CONVERSATIONS
}
EOF
python3 "$HELPER" report --work "$WORK" --meta "$WORK/meta.json" --json "$OUT/results.json" --doc "$DOC" \
  --reads "$RUN_READS" --writes "$RUN_WRITES" --list "$RUN_LIST" --webhooks "$RUN_WEBHOOKS" --citus "$RUN_CITUS" --streams "$RUN_STREAMS"
log "wrote $DOC and $OUT/results.json"

# This run's webhook deliveries: every event, in order (else the throughput means nothing).
if [ "$RUN_WEBHOOKS" = 1 ]; then
  webhook_problem=$(python3 -c 'import json, sys
r = (json.load(open(sys.argv[1])).get("webhooks") or {}).get("run") or {}
lost, events, violations, first = r.get("lost"), r.get("events"), r.get("order_violations"), r.get("first_violation")
problems = ["no webhook run recorded"] if not r else []
problems += [f"{lost} of {events} events lost"] if r and lost else []
problems += [f"events out of order ({violations} violations, the first {first})"] if r and not r.get("in_order") else []
problems += ["delivered_through never reached the last event"] if r and not r.get("delivered_through_reached") else []
print("; ".join(problems))' "$OUT/results.json")
fi

# This run's errors (a writes-only or list-only run keeps the previous read results).
errors=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); w=d.get("writes") or {}; l=d.get("list") or {}
reads=sum(s["errors"] for r in d.get("results", []) for s in r["systems"].values()) if sys.argv[2]=="1" else 0
writes=sum(s["errors"] for s in w.get("systems", {}).values()) if sys.argv[3]=="1" else 0
lists=sum(s["errors"] for s in l.get("systems", {}).values()) if sys.argv[4]=="1" else 0
c=d.get("citus") or {}
citus=sum(s["errors"] for k in ("read", "write") for s in (c.get(k) or {}).get("systems", {}).values()) if sys.argv[5]=="1" else 0
st=d.get("streams") or {}
streams=((st.get("run") or {}).get("errors", 0) + sum(s["errors"] for s in ((st.get("contention") or {}).get("systems") or {}).values())) if sys.argv[6]=="1" else 0
print(reads + writes + lists + citus + streams)' "$OUT/results.json" "$RUN_READS" "$RUN_WRITES" "$RUN_LIST" "$RUN_CITUS" "$RUN_STREAMS")
[ -z "${webhook_problem:-}" ] || log "webhooks: $webhook_problem"
[ "$errors" -eq 0 ] || die "$errors requests failed: the numbers above are not trustworthy"
[ -z "${webhook_problem:-}" ] || die "webhooks: $webhook_problem: the delivery figures above are not trustworthy"
