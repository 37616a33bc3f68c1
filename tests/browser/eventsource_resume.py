"""A real browser's EventSource on the default `deliver=new` resumes across
a gateway restart with nothing lost.

Headless Chromium (Debian's, driven by Playwright) opens
`/events?subject=funding_rate.>` on the gateway's own origin and shows every
event it gets. Five messages are published through the gateway; the gateway
is stopped; three are stored straight into NATS meanwhile; the gateway comes
back on the same port; EventSource reconnects by itself with
`Last-Event-ID`; two more are published. The page must show 1..10, each
once, in order, with the stream sequence as the event id.

    GATEWAY_BIN=target/debug/message-broker NATS_SERVER_BIN=... \\
        .tools/venv/bin/python tests/browser/eventsource_resume.py

Leaves a screenshot in target/browser/eventsource_resume.png. Exits non-zero
on failure.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = os.environ.get("GATEWAY_BIN", str(ROOT / "target/debug/message-broker"))
NATS = os.environ.get("NATS_SERVER_BIN", str(ROOT / ".tools/venv/bin/nats-server"))
SUBJECT = "funding_rate.binance.perpetual.BTC-USDT"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def wait_for(what, check, timeout=30.0):
    """Polls `check` until it returns a true value; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nats(workdir):
    store, ports = workdir / "js", workdir / "ports"
    ports.mkdir()
    proc = subprocess.Popen(
        [NATS, "-a", "127.0.0.1", "-p", "-1", "-js", "-sd", str(store),
         "--ports_file_dir", str(ports)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    ports_file = ports / f"nats-server_{proc.pid}.ports"

    def url():
        try:
            return json.loads(ports_file.read_text())["nats"][0]
        except (OSError, ValueError, KeyError):
            return None

    return proc, wait_for("nats-server is up", url)


class Nats:
    """Just enough of the NATS protocol to store a message and wait for
    JetStream's ack (no client library needed)."""

    def __init__(self, url):
        host, port = url.removeprefix("nats://").rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.buf = b""
        self.line()  # INFO
        self.sock.sendall(b'CONNECT {"verbose":false,"headers":true}\r\nSUB _ack.> 1\r\n')

    def line(self):
        while b"\r\n" not in self.buf:
            self.buf += self.sock.recv(65536)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def store(self, subject, body):
        data = body.encode()
        self.sock.sendall(b"PUB %s _ack.1 %d\r\n%s\r\n" % (subject.encode(), len(data), data))
        while True:
            line = self.line()
            if line == b"PING":
                self.sock.sendall(b"PONG\r\n")
            elif line.startswith(b"MSG"):
                size = int(line.split()[-1])
                while len(self.buf) < size + 2:
                    self.buf += self.sock.recv(65536)
                ack, self.buf = json.loads(self.buf[:size]), self.buf[size + 2:]
                assert "seq" in ack, ack
                return ack["seq"]


class Gateway:
    def __init__(self, workdir, nats_url, port):
        self.config = workdir / "gateway.yaml"
        self.config.write_text(
            "service:\n  host: \"127.0.0.1\"\n  port: %d\n"
            "nats_client:\n  nats_url: \"%s\"\n  reconnect_time_wait: 0.2\n"
            "streams:\n  MARKET_DATA:\n    subjects: [\"funding_rate.>\"]\n"
            "logging:\n  level: \"warn\"\n" % (port, nats_url)
        )
        self.base = f"http://127.0.0.1:{port}"
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [GATEWAY, "-c", str(self.config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        # Ready once a publish on the stored subject is stored (200, not 202).
        wait_for("the gateway stores messages", lambda: self.try_publish("0") == 200)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)

    def try_publish(self, body):
        # A probe on another subject of the stream: the page is not subscribed.
        return self.post("/publish/funding_rate.probe", body)

    def publish(self, body):
        status = self.post(f"/publish/{SUBJECT}", body)
        assert status == 200, f"publish {body}: {status}"

    def post(self, path, body):
        request = urllib.request.Request(self.base + path, data=body.encode(), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5) as res:
                return res.status
        except urllib.error.HTTPError as err:
            return err.code
        except OSError:
            return None


PAGE_SCRIPT = """
() => {
    window.got = [];
    window.subscribed = 0;
    document.title = 'EventSource resume';
    document.body.innerHTML = '<h1>EventSource on funding_rate.binance.&gt;</h1><ol id="log"></ol>';
    const log = document.getElementById('log');
    const es = new EventSource('/events?subject=funding_rate.binance.%3E');
    es.addEventListener('subscribed', () => { window.subscribed += 1; });
    es.addEventListener('message', (e) => {
        const frame = JSON.parse(e.data);
        window.got.push([e.lastEventId, frame.data]);
        const li = document.createElement('li');
        li.textContent = `id ${e.lastEventId} (seq ${frame.seq}): ${JSON.stringify(frame.data)}`;
        log.appendChild(li);
    });
}
"""


def main():
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        nats_proc, nats_url = start_nats(workdir)
        gateway = Gateway(workdir, nats_url, free_port())
        try:
            gateway.start()
            run(gateway, nats_url)
        finally:
            if gateway.proc and gateway.proc.poll() is None:
                gateway.proc.kill()
            nats_proc.kill()
    print("eventsource_resume: ok")


def run(gateway, nats_url):
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(gateway.base + "/healthz")
        page.evaluate(PAGE_SCRIPT)
        got = lambda: page.evaluate("window.got")
        wait_for("the page is subscribed", lambda: page.evaluate("window.subscribed") == 1)
        for i in range(1, 6):
            gateway.publish(str(i))
        wait_for("five events", lambda: len(got()) == 5)

        gateway.stop()
        nats = Nats(nats_url)
        for i in range(6, 9):
            nats.store(SUBJECT, str(i))
        gateway.start()
        # EventSource reconnects by itself, sending Last-Event-ID.
        wait_for("the page resubscribed", lambda: page.evaluate("window.subscribed") == 2)
        wait_for("the three stored while the gateway was away", lambda: len(got()) == 8)
        for i in range(9, 11):
            gateway.publish(str(i))
        wait_for("ten events", lambda: len(got()) >= 10)

        shot = ROOT / "target/browser/eventsource_resume.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot))
        events = got()
        browser.close()

    values = [data for _, data in events]
    ids = [int(event_id) for event_id, _ in events]
    assert values == list(range(1, 11)), f"nothing lost, nothing twice: {values}"
    assert ids == sorted(ids) and len(set(ids)) == 10, f"ids are stream sequences: {ids}"


if __name__ == "__main__":
    try:
        main()
    except AssertionError as err:
        print(f"eventsource_resume: FAILED: {err}", file=sys.stderr)
        sys.exit(1)
