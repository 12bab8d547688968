#!/usr/bin/env bash
# `make test`: formatting, lints, then the whole suite against a throw-away
# PostgreSQL cluster (started here, stopped on exit whatever happens).
set -euo pipefail
cd "$(dirname "$0")/.."

# Each phase says how long the run has taken so far, so a cold run's cost per phase
# (the feedback loop's budget) can be read from any CI log.
start=$SECONDS
phase() { echo "==> [$((SECONDS - start)) s] $*"; }

phase "cargo fmt --check"
cargo fmt --all -- --check

phase "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

# The black-box tests (tests/, package pingback-tests) run the real binary, which Cargo
# builds only for its own package's tests: build it first, where they look for it.
phase "cargo build --bin pingback (the binary the black-box tests run)"
cargo build --locked --bin pingback

# cargo-nextest runs the test binaries side by side (`.config/nextest.toml`); plain
# `cargo test` runs them one after another, which is slower but gives the same verdict.
if cargo nextest --version >/dev/null 2>&1; then
  runner=(cargo nextest run)
else
  echo "cargo-nextest is not installed: the suites run one binary at a time (cargo test)"
  runner=(cargo test)
fi
# No doc tests (`--all-targets`): there are none, and compiling them costs a minute.
runner+=(--workspace --all-targets --locked)
phase "building the tests"
"${runner[@]}" --no-run

phase "starting an ephemeral PostgreSQL"
eval "$(scripts/test-postgres.sh start)"
log=$(mktemp)
contract_log=$(mktemp)
contract_pid=
cleanup() {
  if [ -n "$contract_pid" ]; then kill "$contract_pid" 2>/dev/null || true; fi
  rm -f "$log" "$contract_log"
  scripts/test-postgres.sh stop "$PINGBACK_TEST_PG_DIR" >/dev/null 2>&1
}
trap cleanup EXIT

# The contract tests (schemathesis against the OpenAPI document, /docs in Chromium) run
# beside the suites: they keep one core busy with Python while the suites mostly wait,
# and they have a server and a SQLite database of their own. Their output follows the
# suites'.
phase "tests (PostgreSQL at ${PINGBACK_TEST_DATABASE_URL}), contract tests beside them"
scripts/contract-test.sh >"$contract_log" 2>&1 &
contract_pid=$!
set +e
"${runner[@]}" --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
phase "suites done; waiting for the contract tests"
wait "$contract_pid"
contract_status=$?
contract_pid=
set -e
cat "$contract_log"
[ "$contract_status" -eq 0 ] || { echo "contract tests failed (status $contract_status)"; status=1; }

# One closing line for the whole run: nextest's summary, or `cargo test`'s summed over
# every test binary.
echo
if ! grep -E '^ *Summary \[' "$log"; then
  awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
       END { printf "%d passed, %d failed\n", p, f }' "$log"
fi
phase "done"
exit "$status"
