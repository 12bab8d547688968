# Pingback: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /usr/bin/env bash
CARGO ?= cargo
DEMO_BUSINESS ?= b2c3d4e5-f6a7-8901-bcde-f12345678901
BIND ?= 127.0.0.1:8080

.PHONY: run test test-citus check fmt lint build release help audit fuzz

help:
	@echo "make run    build, migrate the embedded SQLite database, load demo data, serve on $(BIND)"
	@echo "make test   fmt check, clippy, and every test (starts a throw-away PostgreSQL)"
	@echo "make test-citus  the suites on a throw-away Citus cluster (builds Citus once)"

release:
	$(CARGO) build --release --locked --bin pingback

# Serves the embedded default (SQLite under data/) with generated demo data and
# prints a ready-to-paste curl line. Safe to run again: generation is deterministic,
# so re-running replaces the same conversations instead of adding more.
run: release
	@scripts/run-demo.sh "$(DEMO_BUSINESS)" "$(BIND)"

# Everything CI runs: formatting, lints, unit, adapter (both backends) and
# black-box tests. PostgreSQL is installed if missing and run as a temporary cluster.
test:
	@scripts/test.sh

# The same suites on a throw-away Citus cluster (coordinator + 2 workers, tables
# distributed by business), plus the Citus-only tests (tests/citus.rs). Builds Citus
# from ../shared/vendor into target/citus on first use; PINGBACK_CITUS_PREINSTALLED=1
# (and CITUS_PG_BINDIR) uses an installed Citus instead. See "Scaling out" in README.
test-citus:
	@scripts/test-citus.sh

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

# Supply chain: licenses, duplicate versions, sources (offline). Advisories need the
# advisory database from the network: `cargo deny check advisories` where reachable.
audit:
	@command -v cargo-deny >/dev/null || $(CARGO) install --locked cargo-deny
	$(CARGO) deny check bans licenses sources

# Throughput and latency of GET /api/v1/conversations/{id}: pingback as shipped against
# two hand-written baselines and pgbench (and the other scenarios), on a throw-away
# PostgreSQL; rewrites docs/benchmarks.md.
# BENCH_QUICK=1 for a short smoke run.
.PHONY: bench
bench:
	@scripts/bench.sh

# A bounded property-testing campaign over the token extractor and the import parser
# (the same properties run with few cases in `make test`). Failures are saved under
# proptest-regressions/ and replayed first; commit them.
FUZZ_CASES ?= 20000
fuzz:
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test --release --locked -p pingback-http --test token_fuzz
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test --release --locked -p pingback-import --test import_fuzz

# Times importing 1,000,000 messages into a throw-away PostgreSQL (issue: < 60 s).
.PHONY: bench-import
bench-import:
	@scripts/bench-import.sh

# The OpenAPI 3.1 document is generated from the code (utoipa derives on the HTTP
# adapter's response types); docs/openapi.json is its committed copy, which a test
# keeps equal to what /api/openapi.json serves. Regenerate it after changing the API.
.PHONY: openapi docs-check contract-test
openapi:
	@tmp=$$(mktemp) && $(CARGO) run --quiet --locked -p pingback-http --example openapi > "$$tmp" \
		&& mv "$$tmp" docs/openapi.json && chmod 644 docs/openapi.json && echo "wrote docs/openapi.json" \
		|| { rm -f "$$tmp"; exit 1; }

# The committed document is the served one (fails with a hint to run `make openapi`).
docs-check:
	$(CARGO) test --locked -p pingback-http --lib openapi_tests

# Schemathesis against a live server (every response conforms to docs/openapi.json,
# no input gives a 5xx) and /docs rendered in headless Chromium (screenshot kept).
contract-test:
	@scripts/contract-test.sh
