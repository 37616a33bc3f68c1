#!/usr/bin/env bash
# Quick start: build the gateway, make sure a NATS server answers, run it.
#
#   scripts/run.sh [-c CONFIG] [ARGS...]    # all args go to message-broker
#
# NATS URL: $MARKETPRISM_NATS_URL, else nats_client.nats_url of the config
# (first URL). If nothing answers there and the host is local, one is started:
# with Docker (docker-compose.nats.yml) when an engine runs, else the pinned
# nats-server from .tools/ in the background (stop: scripts/stop-local-nats.sh).
# RUN_SH_SKIP_BUILD=1 skips the release build (uses the debug binary if the
# release one is missing).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA=$ROOT/.data
PIDFILE=$DATA/nats-server.pid
NATS_LOG=$DATA/nats-server.log
NATS_BIN=$ROOT/.tools/venv/bin/nats-server
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

log() { printf 'run.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- Config: the one the binary will load, so we read the same NATS URL. ---
args=("$@")
config=""
for ((i = 0; i < ${#args[@]}; i++)); do
    case ${args[i]} in
        -c | --config) config=${args[i + 1]:-}; break ;;
        --config=*) config=${args[i]#--config=}; break ;;
        -c?*) config=${args[i]#-c}; break ;;
        --) break ;;
    esac
done
if [[ -z $config ]]; then
    # Absolute, so the script works from any directory.
    config=$ROOT/config/unified_message_broker.yaml
    args=(--config "$config" "${args[@]}")
fi
[[ -f $config ]] || die "config file not found: $config"

# Commands that do not talk to NATS need no server.
needs_nats=1
for a in "${args[@]}"; do
    case $a in check-config | openapi | help | -h | --help | -V | --version) needs_nats=0 ;; esac
done

# Value of KEY inside top-level SECTION of a simple YAML file: an inline
# scalar/flow list, or else the first item of a block list below the key.
yaml_get() {
    awk -v section="$1" -v key="$2" '
        /^[^[:space:]#]/ { insec = ($0 ~ "^" section ":"); found = 0 }
        !insec { next }
        found && /^[[:space:]]*-/ {
            v = $0; sub(/^[[:space:]]*-[[:space:]]*/, "", v); sub(/[[:space:]]+#.*$/, "", v)
            print v; exit
        }
        found && /^[[:space:]]*(#|$)/ { next }
        found { exit }
        $0 ~ "^[[:space:]]+" key ":" {
            v = $0; sub(/^[^:]*:[[:space:]]*/, "", v); sub(/[[:space:]]+#.*$/, "", v)
            if (v != "") { print v; exit }
            found = 1
        }
    ' "$3"
}

# First URL of a comma-separated list / YAML flow list, unquoted.
first_url() {
    local s=$1
    s=${s#[}; s=${s%]}; s=${s%%,*}
    s=${s//\"/}; s=${s//\'/}; s=${s//[[:space:]]/}
    printf '%s' "$s"
}

# A NATS server greets every client with "INFO {...}". Checking for it (not
# just a TCP connect) matters: proxies and firewalls may accept any port.
nats_answers() { # host port: greeted by NATS within 1 s?
    # shellcheck disable=SC2016 # $1/$2 expand in the inner bash, on purpose
    timeout 1 bash -c 'exec 3<>"/dev/tcp/$1/$2" && IFS= read -r -n 4 w <&3 && [[ $w == INFO ]]' \
        _ "$1" "$2" >/dev/null 2>&1
}

wait_nats() { # host port deadline_seconds
    local end=$((SECONDS + $3))
    until nats_answers "$1" "$2"; do
        ((SECONDS < end)) || return 1
        sleep 0.5
    done
}

compose() {
    if docker compose version >/dev/null 2>&1; then
        docker compose "$@"
    else
        docker-compose "$@"
    fi
}

have_docker() {
    command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 &&
        { docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; }
}

# Is the pid in the pid file one of our nats-servers that still runs?
our_nats_running() {
    local pid
    [[ -f $PIDFILE ]] && pid=$(<"$PIDFILE") && [[ $pid =~ ^[0-9]+$ ]] &&
        [[ $(cat "/proc/$pid/comm" 2>/dev/null || ps -p "$pid" -o comm= 2>/dev/null) == nats-server* ]]
}

start_local_nats() { # port
    INSTALL_TEST_DEPS_NATS_ONLY=1 "$ROOT/scripts/install-test-deps.sh" >/dev/null
    # A server of ours that no longer answers on this port (other port, hung)
    # would hold the monitoring port and the store: replace it.
    if our_nats_running; then
        "$ROOT/scripts/stop-local-nats.sh" >&2
    fi
    mkdir -p "$DATA/jetstream"
    log "starting nats-server on port $1 (log: ${NATS_LOG#"$ROOT"/})"
    # Subshell + setsid: the server is re-parented to init (no zombie under
    # the exec'd gateway) and Ctrl-C on the gateway does not reach it.
    (
        launcher=()
        command -v setsid >/dev/null 2>&1 && launcher=(setsid)
        "${launcher[@]}" "$NATS_BIN" -js -sd "$DATA/jetstream" -a 127.0.0.1 -p "$1" \
            --http_port "${NATS_HTTP_PORT:-8222}" -n marketprism-nats \
            </dev/null >>"$NATS_LOG" 2>&1 &
        echo $! >"$PIDFILE"
    )
    if ! wait_nats 127.0.0.1 "$1" 30; then
        tail -n 20 "$NATS_LOG" >&2 || true
        die "nats-server did not answer on port $1 within 30 s (log: $NATS_LOG)"
    fi
}

# --- Build first: a failed build should not leave a server behind. ---
bin=$TARGET/release/message-broker
if [[ ${RUN_SH_SKIP_BUILD:-0} == 1 ]]; then
    [[ -x $bin ]] || bin=$TARGET/debug/message-broker
    [[ -x $bin ]] || die "RUN_SH_SKIP_BUILD=1 but no built message-broker under $TARGET"
else
    cargo build --release --locked --manifest-path "$ROOT/Cargo.toml"
fi

http_port=$(first_url "$(yaml_get service port "$config")")
http_port=${http_port:-8086}

if ((needs_nats)); then
    if [[ -n ${MARKETPRISM_NATS_URL:-} ]]; then
        url=$(first_url "$MARKETPRISM_NATS_URL")
    else
        url=$(first_url "$(yaml_get nats_client nats_url "$config")")
    fi
    url=${url:-nats://127.0.0.1:4222}

    # host:port out of [scheme://][user[:pass]@]host[:port][/...]
    hostport=${url#*://}
    hostport=${hostport%%/*}
    hostport=${hostport##*@}
    if [[ $hostport == \[* ]]; then # [IPv6]:port
        host=${hostport%%]*}; host=${host#[}
        port=${hostport#*]}; port=${port#:}
    else
        host=${hostport%%:*}
        port=${hostport#"$host"}; port=${port#:}
    fi
    host=${host:-127.0.0.1}
    port=${port:-4222}

    if nats_answers "$host" "$port"; then
        how="already running"
    else
        case $host in
            127.* | localhost | 0.0.0.0 | ::1) ;;
            *) die "NATS at $url ($host:$port) is unreachable; it is not local, so run.sh will not start one. Start it or set MARKETPRISM_NATS_URL." ;;
        esac
        if have_docker; then
            log "no NATS on port $port; starting it with Docker (docker-compose.nats.yml)"
            NATS_PORT=$port compose -f "$ROOT/docker-compose.nats.yml" up -d nats
            wait_nats "$host" "$port" 60 || die "the Docker NATS did not answer on $host:$port within 60 s"
            how="Docker service 'nats'; stop: docker compose -f docker-compose.nats.yml down"
        else
            start_local_nats "$port"
            how="local nats-server pid $(<"$PIDFILE"); stop: scripts/stop-local-nats.sh"
        fi
    fi
    log "NATS: $url ($how). Once started, 'curl -i localhost:$http_port/healthz' should answer 200."
fi

exec "$bin" "${args[@]}"
