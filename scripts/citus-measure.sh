#!/usr/bin/env bash
# The figures of docs/scaling.md: on this machine, the same import (and its id checks)
# on single-node PostgreSQL and on a Citus cluster (coordinator + 2 workers); then, on
# the cluster, adding a worker and rebalancing, and isolating a tenant. The database
# on the cluster is made as README's "Scaling out" tells an operator to.
#
#   scripts/citus-measure.sh          # CONV=200 MSGS=250 by default; BIN=target/release/pingback
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/debug/pingback}
[ -x "$BIN" ] || cargo build --locked --bin pingback
CONV=${CONV:-200}; MSGS=${MSGS:-250}
B=b2c3d4e5-f6a7-8901-bcde-f12345678901
work=$(mktemp -d)
eval "$(scripts/test-postgres.sh start)"
eval "$(scripts/citus.sh start)"
trap 'scripts/test-postgres.sh stop "$PINGBACK_TEST_PG_DIR"; scripts/citus.sh stop "$PINGBACK_CITUS_DIR"; rm -rf "$work"' EXIT
D=$PINGBACK_CITUS_DIR
port() { cat "$D/$1/port"; }
P() { local p=$1; shift; psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U pingback -p "$p" "$@"; }
plain_port=$(sed -n 's/^-p \([0-9]*\).*/\1/p' "$PINGBACK_TEST_PG_DIR/options")

echo "== operator procedure: database pingback on every node"
for n in coordinator worker1 worker2; do
  P "$(port $n)" -d postgres -c "CREATE DATABASE pingback" 2>/dev/null
  P "$(port $n)" -d pingback -c "CREATE EXTENSION citus"
done
P "$(port coordinator)" -d pingback -c "SELECT citus_set_coordinator_host('127.0.0.1', $(port coordinator))" \
  -c "SELECT citus_add_node('127.0.0.1', $(port worker1))" -c "SELECT citus_add_node('127.0.0.1', $(port worker2))" >/dev/null
P "$plain_port" -d postgres -c "CREATE DATABASE pingback"

CITUS=postgres://pingback@127.0.0.1:$(port coordinator)/pingback
PLAIN=postgres://pingback@127.0.0.1:$plain_port/pingback
python3 benches/make_import_file.py "$work/import.json" "$CONV" "$MSGS"
echo "input: $CONV conversations x $MSGS messages, $(du -h "$work/import.json" | cut -f1)"

for which in PLAIN CITUS; do
  url=${!which}
  echo "== $which"
  PINGBACK__DATABASE__URL=$url PINGBACK__LOG__LEVEL=info $BIN migrate 2>&1 | grep -E "Citus|applied|migrat" | head -8 || true
  for round in first replace; do
    s=$(date +%s.%N)
    PINGBACK__DATABASE__URL=$url $BIN import "$work/import.json" >/dev/null
    e=$(date +%s.%N)
    echo "$which import ($round): $(python3 -c "print(f'{$e - $s:.2f}')") s"
  done
done

# The id checks, server side, with one batch's worth of real ids (5,000 messages,
# the importer's batch), median of 5 EXPLAIN ANALYZE executions.
# The statement as the importer runs it: inside its transaction, timed by psql
# (client round trip included), median of the last 5 of 6.
idcheck() {
  local p=$1 table=$2 cols=$3 n=$4 ids
  ids=$(P "$p" -d pingback -At -c "SELECT array_agg(id)::text FROM (SELECT id FROM $table ORDER BY id LIMIT $n) s")
  {
    echo '\timing on'
    echo 'BEGIN;'
    for i in 1 2 3 4 5 6; do
      echo "SELECT count(*) FROM (SELECT $cols FROM $table WHERE id = ANY('$ids'::uuid[])) s;"
    done
    echo 'COMMIT;'
  } >"$work/q.sql"
  P "$p" -d pingback -At -f "$work/q.sql" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' \
    | sed -n 3,7p | sort -n | sed -n 3p
}
for spec in "conversations|business_id, id|200" "customers|business_id, id|200" "messages|business_id, conversation_id, id|5000" "attachments|business_id, conversation_id, message_id, id|250"; do
  IFS='|' read -r table cols n <<<"$spec"
  a=$(idcheck "$plain_port" "$table" "$cols" "$n"); b=$(idcheck "$(port coordinator)" "$table" "$cols" "$n")
  echo "id check $table ($n ids): single node ${a} ms, Citus ${b} ms"
done
# Same for a single-shard read, for comparison.
for p in "$plain_port" "$(port coordinator)"; do
  P "$p" -d pingback -At -c "SELECT id FROM conversations WHERE business_id = '$B' LIMIT 1" >"$work/cid"
done
cid=$(cat "$work/cid")

echo "== add a worker and rebalance"
P "$(port coordinator)" -d pingback -At -c "SELECT nodeport, count(*) FROM citus_shards GROUP BY 1 ORDER BY 1"
w=$(scripts/citus.sh add-worker "$D" | cut -d' ' -f1)
P "$(port "$w")" -d postgres -c "CREATE DATABASE pingback" 2>/dev/null
P "$(port "$w")" -d pingback -c "CREATE EXTENSION citus"
P "$(port coordinator)" -d pingback -c "SELECT citus_add_node('127.0.0.1', $(port "$w"))" >/dev/null
s=$(date +%s.%N)
P "$(port coordinator)" -d pingback -c "SELECT citus_rebalance_start(shard_transfer_mode => 'block_writes')" -c "SELECT citus_rebalance_wait()" >/dev/null
e=$(date +%s.%N)
echo "rebalance: $(python3 -c "print(f'{$e - $s:.1f}')") s"
P "$(port coordinator)" -d pingback -At -c "SELECT nodeport, count(*) FROM citus_shards GROUP BY 1 ORDER BY 1"
P "$(port coordinator)" -d pingback -At -c "SELECT count(*) FROM messages WHERE business_id = '$B'"

echo "== isolate a tenant"
s=$(date +%s.%N)
P "$(port coordinator)" -d pingback -At -c "SELECT isolate_tenant_to_new_shard('conversations', '$B'::uuid, 'CASCADE', shard_transfer_mode => 'block_writes')"
e=$(date +%s.%N)
echo "isolate: $(python3 -c "print(f'{$e - $s:.1f}')") s"
P "$(port coordinator)" -d pingback -At -c "SELECT table_name, shardid, nodeport, shard_size FROM citus_shards WHERE shardid IN (SELECT get_shard_id_for_distribution_column(logicalrelid, '$B') FROM pg_dist_partition WHERE partmethod = 'h') ORDER BY 1"
P "$(port coordinator)" -d pingback -At -c "SELECT count(*) FROM messages WHERE business_id = '$B'"
echo "== reads still routed after the moves"
P "$(port coordinator)" -d pingback -c "EXPLAIN (COSTS OFF) SELECT count(*) FROM messages WHERE business_id = '$B' AND conversation_id = '$cid'" | grep -E "Task Count|Node:"
