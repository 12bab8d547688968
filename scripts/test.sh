#!/usr/bin/env bash
# `make test`: formatting, lints, then the whole suite against a throw-away
# PostgreSQL cluster (started here, stopped on exit whatever happens).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> starting an ephemeral PostgreSQL"
eval "$(scripts/test-postgres.sh start)"
trap 'scripts/test-postgres.sh stop "$PINGBACK_TEST_PG_DIR"' EXIT

echo "==> tests (PostgreSQL at ${PINGBACK_TEST_DATABASE_URL})"
cargo test --workspace --locked --no-fail-fast
