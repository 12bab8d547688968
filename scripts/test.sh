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

phase "starting an ephemeral PostgreSQL"
eval "$(scripts/test-postgres.sh start)"
trap 'scripts/test-postgres.sh stop "$PINGBACK_TEST_PG_DIR"' EXIT

phase "tests (PostgreSQL at ${PINGBACK_TEST_DATABASE_URL})"
log=$(mktemp)
trap 'rm -f "$log"; scripts/test-postgres.sh stop "$PINGBACK_TEST_PG_DIR" >/dev/null 2>&1' EXIT
# No doc tests: there are none, and compiling them costs a minute on two cores.
set +e
cargo test --workspace --all-targets --locked --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

phase "contract tests: schemathesis against the OpenAPI document, /docs in Chromium"
scripts/contract-test.sh || status=1

# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "\n%d passed, %d failed\n", p, f }' "$log"
phase "done"
exit "$status"
