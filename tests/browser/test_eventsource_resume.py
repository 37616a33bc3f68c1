"""A real browser's EventSource on the default `deliver=new` resumes across
a gateway restart with nothing lost.

The page opens `/events?subject=funding_rate.binance.>` and lists every
event. Five messages are published through the gateway; the gateway stops;
three are stored straight into NATS meanwhile; the gateway comes back on the
same port; EventSource reconnects by itself with `Last-Event-ID`; two more
are published. The page must show 1..10, each once, in order, each with its
stream sequence as the event id.
"""

import json
import socket
import subprocess

from conftest import GATEWAY_BIN, Gateway, screenshot, wait_for

SUBJECT = "funding_rate.binance.perpetual.BTC-USDT"

PAGE = """
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


def store(nats_url, subject, body):
    """Stores a message straight into JetStream (the NATS protocol, enough
    of it to publish and read the stream's ack)."""
    host, port = nats_url.removeprefix("nats://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        buf = b""

        def line():
            nonlocal buf
            while b"\r\n" not in buf:
                buf += conn.recv(65536)
            head, buf = buf.split(b"\r\n", 1)
            return head

        line()  # INFO
        data = body.encode()
        conn.sendall(
            b'CONNECT {"verbose":false}\r\nSUB _ack 1\r\nPUB %s _ack %d\r\n%s\r\n'
            % (subject.encode(), len(data), data)
        )
        while True:
            head = line()
            if head == b"PING":
                conn.sendall(b"PONG\r\n")
            elif head.startswith(b"MSG"):
                size = int(head.split()[-1])
                while len(buf) < size + 2:
                    buf += conn.recv(65536)
                ack = json.loads(buf[:size])
                assert "seq" in ack, ack
                return ack["seq"]


def stores(gw):
    """The gateway is up and routes the stream's subjects to it (200, not
    the 202 of a core publish): a probe the page does not subscribe to."""
    return gw.publish("funding_rate.probe", "0")[0] == 200


def restart(gw):
    """Starts the gateway again with the same config, so on the same port."""
    gw.log = open(gw.log.name, "ab")
    gw.proc = subprocess.Popen(
        [GATEWAY_BIN, "-c", str(gw.config)], stdout=gw.log, stderr=gw.log
    )
    wait_for(lambda: stores(gw), 30, "the restarted gateway to store messages")


def test_eventsource_on_deliver_new_resumes_across_a_gateway_restart(nats, workdir, browser):
    gw = Gateway(nats, workdir)
    gw.config = workdir / "broker.yaml"
    try:
        wait_for(lambda: stores(gw), 30, "the gateway to store messages")
        context = browser.new_context(viewport={"width": 900, "height": 500}, base_url=gw.origin)
        page = context.new_page()
        page.goto("/healthz")
        page.evaluate(PAGE)
        got = lambda: page.evaluate("window.got")  # noqa: E731
        wait_for(lambda: page.evaluate("window.subscribed") == 1, 10, "the page to subscribe")
        for i in range(1, 6):
            assert gw.publish(SUBJECT, str(i))[0] == 200
        wait_for(lambda: len(got()) == 5, 10, "five events")

        gw.stop()
        for i in range(6, 9):
            store(nats.url, SUBJECT, str(i))
        restart(gw)
        # EventSource reconnects by itself, with Last-Event-ID.
        wait_for(lambda: page.evaluate("window.subscribed") == 2, 30, "the page to resubscribe")
        wait_for(lambda: len(got()) == 8, 10, "the three stored while the gateway was away")
        for i in range(9, 11):
            assert gw.publish(SUBJECT, str(i))[0] == 200
        wait_for(lambda: len(got()) >= 10, 10, "ten events")
        screenshot(page, "eventsource_resume")
        events = got()
        context.close()
    finally:
        if gw.proc.poll() is None:
            gw.stop()

    values = [data for _, data in events]
    ids = [int(event_id) for event_id, _ in events]
    assert values == list(range(1, 11)), f"nothing lost, nothing twice: {values}"
    assert ids == sorted(ids) and len(set(ids)) == 10, f"ids are stream sequences: {ids}"
