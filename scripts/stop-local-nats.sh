#!/usr/bin/env bash
# Stops the background nats-server that scripts/run.sh started (the one in
# .data/nats-server.pid); a Docker-started NATS is left to docker compose.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PIDFILE=$ROOT/.data/nats-server.pid

if [[ ! -f $PIDFILE ]]; then
    echo "stop-local-nats: no ${PIDFILE#"$ROOT"/}, nothing to stop" \
        "(a Docker NATS stops with: docker compose -f docker-compose.nats.yml down)"
    exit 0
fi
pid=$(<"$PIDFILE")

# Signal the pid only if it still is a nats-server: pids get reused.
name=""
if [[ $pid =~ ^[0-9]+$ ]]; then
    name=$(cat "/proc/$pid/comm" 2>/dev/null || ps -p "$pid" -o comm= 2>/dev/null || true)
fi
if [[ $name == nats-server* ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    # nats-server shuts down JetStream cleanly on SIGTERM; give it 10 s.
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    echo "stop-local-nats: stopped nats-server (pid $pid)"
else
    echo "stop-local-nats: pid ${pid:-?} is not a running nats-server; removed the stale pid file"
fi
rm -f "$PIDFILE"
