#!/usr/bin/env bash
# `make bench-import`: times `pingback import` of 1,000,000 messages (1,000
# conversations × 1,000 messages, 5 % with an attachment) into a throw-away PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin pingback >&2
work=$(mktemp -d)
eval "$(scripts/test-postgres.sh start)"
trap 'scripts/test-postgres.sh stop "$PINGBACK_TEST_PG_DIR"; rm -rf "$work"' EXIT
export PINGBACK__DATABASE__URL="$PINGBACK_TEST_DATABASE_URL"
python3 benches/make_import_file.py "$work/import.json" "${CONVERSATIONS:-1000}" "${MESSAGES:-1000}"
echo "input: $(du -h "$work/import.json" | cut -f1)" >&2
target/release/pingback migrate
start=$(date +%s.%N)
target/release/pingback import "$work/import.json"
end=$(date +%s.%N)
echo "first import: $(python3 -c "print(f'{$end - $start:.1f}')") s" >&2
start=$(date +%s.%N)
target/release/pingback import "$work/import.json"
end=$(date +%s.%N)
echo "re-import (replace): $(python3 -c "print(f'{$end - $start:.1f}')") s" >&2
