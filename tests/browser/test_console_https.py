"""The console over HTTPS, where Chromium speaks HTTP/2: its tail's
WebSocket is a stream of the page's connection (RFC 8441 extended
CONNECT), not an HTTP/1.1 connection of its own."""

import re

from conftest import ROOT, screenshot

SUBJECT = "orderbook.binance.perpetual.BTC-USDT"


def test_over_https_the_tail_socket_rides_the_pages_http2_connection(tls_gateway, page_for):
    page = page_for(tls_gateway)
    page.goto("/console/#/tail?subject=orderbook.binance.%3E")
    assert page.evaluate("performance.getEntriesByType('navigation')[0].nextHopProtocol") == "h2"
    page.locator(".note", has_text="Subscribed to orderbook.binance.>").wait_for()
    status, receipt = tls_gateway.publish(SUBJECT, (ROOT / f"tests/fixtures/payloads/{SUBJECT}.json").read_text())
    assert status == 202, receipt  # core NATS: accepted, not stored
    row = page.locator("table.tail-rows tbody tr", has_text=SUBJECT)
    row.wait_for(timeout=2000)
    assert '"data_type":"orderbook"' in row.inner_text()
    sockets = page.watch.sockets
    assert len(sockets) == 1 and sockets[0].startswith(f"wss://127.0.0.1:{tls_gateway.port}/subscribe?"), sockets
    # Only an HTTP/2 stream opens a WebSocket with CONNECT.
    metrics = tls_gateway.get("/metrics")[2].decode()
    opened = [
        line for line in metrics.splitlines()
        if line.startswith("marketprism_broker_http_requests_total{")
        and 'route="/subscribe"' in line and 'method="CONNECT"' in line and 'status="200"' in line
    ]
    assert len(opened) == 1 and re.search(r"\} 1$", opened[0]), metrics
    screenshot(page, "tail-https")
