#!/usr/bin/env bash
# `make test-citus`: Pingback on a throw-away Citus cluster (coordinator + 2 workers,
# scripts/citus.sh; Citus built from the vendored source on first use, cached under
# target/citus). Every test database is made on all nodes and migrated there, which
# distributes the tables by business (`pingback migrate`'s Citus step). Runs the adapter
# conformance suites (reads, writes, inbox, events, webhooks), the black-box HTTP, CLI,
# write, inbox, event and webhook tests, and tests/citus.rs (co-location, single-shard
# routing of the hot paths, the import's fan-out, a stopped worker).
#
# Not run here: tests/faults.rs. Each of its tests starts a plain PostgreSQL cluster of
# its own (scripts/test-postgres.sh) to stop and lock it, so on Citus it would only test
# single-node PostgreSQL again; its Citus counterpart (a stopped worker) is in
# tests/citus.rs. No test of the suites run here is excluded.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

echo "==> Citus (built once into target/citus)"
scripts/citus.sh build

echo "==> lint of the Citus-only test target (outside --all-targets: it is test = false)"
cargo clippy --locked -p pingback-tests --test citus -- -D warnings

echo "==> building the tests"
cargo build --locked --bin pingback
cargo test --locked -p pingback-persistence --test conformance --test failures \
  --test write_conformance --test inbox_conformance --test events_conformance \
  --test webhooks_conformance --test event_sequencer --no-run
cargo test --locked -p pingback-tests --test http_api --test cli --test writes --test inbox \
  --test events --test webhooks --test citus --no-run

echo "==> starting a Citus cluster"
eval "$(scripts/citus.sh start)"
trap 'scripts/citus.sh stop "$PINGBACK_CITUS_DIR"' EXIT INT TERM
echo "    coordinator: ${PINGBACK_TEST_DATABASE_URL}"

log=$(mktemp)
trap 'rm -f "$log"; scripts/citus.sh stop "$PINGBACK_CITUS_DIR"' EXIT INT TERM
status=0
run() {
  echo "==> $*"
  set +e
  "$@" 2>&1 | tee -a "$log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  set -e
}

# The adapter conformance suite (both adapters; the PostgreSQL cases run on Citus), and
# the adapter's failure modes (a lock held on the coordinator, killed connections, an
# unmigrated database, a corrupt row) and the numbering of pending events (Citus has
# statements of its own there) on the cluster.
run cargo test --locked -p pingback-persistence --test conformance --test failures \
  --test write_conformance --test events_conformance --test webhooks_conformance \
  --test event_sequencer --no-fail-fast
# The inbox's rules; its plan test reads single-node plans (Citus plans are checked for
# routing in tests/citus.rs instead).
run cargo test --locked -p pingback-persistence --test inbox_conformance --no-fail-fast \
  -- --skip postgres_plan
# The black-box HTTP and CLI tests, the writes, the inbox, the event log and webhook
# delivery (the real binary; PostgreSQL cases on Citus).
run cargo test --locked -p pingback-tests --test http_api --test cli --test writes --test inbox \
  --test events --test webhooks --no-fail-fast
# Citus itself; its tests take turns (one stops a worker of the shared cluster).
run cargo test --locked -p pingback-tests --test citus --no-fail-fast -- --nocapture

awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "\n%d passed, %d failed\n", p, f }' "$log"
echo "make test-citus took $((SECONDS - started)) s"
exit "$status"
