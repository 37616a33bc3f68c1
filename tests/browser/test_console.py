"""The console at /console/ in a real browser: overview, streams, a stream's
page, tail and publish, with their deep links. Screenshots of each view go
to target/browser-screenshots (scripts/browser-tests.sh --screenshots copies
them to docs/console/)."""

import json
import shutil
import subprocess
import threading
import time

from conftest import ROOT, http, screenshot, wait_for

PAYLOADS = ROOT / "tests/fixtures/payloads"
FUNDING = "funding_rate.binance.perpetual.BTC-USDT"
OPEN_INTEREST = "open_interest.okx.perpetual.BTC-USDT"


def payload(subject):
    return (PAYLOADS / f"{subject}.json").read_text()


def number(text):
    """1,600/s or 1.6k/s as a number."""
    text = text.split("/")[0].replace(",", "")
    return float(text[:-1]) * 1000 if text.endswith("k") else float(text)


def publish_market_data(gateway, count):
    """`count` funding rates and open interests, with Nats-Msg-Ids, as the collector sends them."""
    for i in range(count):
        subject = FUNDING if i % 2 == 0 else OPEN_INTEREST
        status, receipt = gateway.publish(subject, payload(subject), msg_id=f"{subject}:{i}")
        assert status == 200, receipt


class Traffic(threading.Thread):
    """Publishes NDJSON batches at about `rate` messages a second until stopped."""

    def __init__(self, gateway, rate, subject="trade.okx.spot.BTC-USDT", batch=50):
        super().__init__(daemon=True)
        self.url = gateway.url("/publish?ack=false")
        self.line = json.dumps({"subject": subject, "data": json.loads(payload(subject))})
        self.batch, self.period = batch, batch / rate
        self.stopping = threading.Event()
        self.sent = 0

    def run(self):
        body = "\n".join([self.line] * self.batch) + "\n"
        next_at = time.monotonic()
        while not self.stopping.is_set():
            status, _, text = http("POST", self.url, body, {"Content-Type": "application/x-ndjson"})
            assert status == 200, text
            self.sent += self.batch
            next_at += self.period
            self.stopping.wait(max(0, next_at - time.monotonic()))

    def stop(self):
        self.stopping.set()
        self.join(10)


def test_overview_and_streams_show_live_rates(gateway, page_for):
    # Stored by MARKET_DATA (published without awaiting acks).
    traffic = Traffic(gateway, rate=200, subject=OPEN_INTEREST)
    traffic.start()
    try:
        # A second page tails it, so deliveries show too.
        tail = page_for(gateway)
        tail.goto("/console/#/tail?subject=open_interest.%3E")
        page = page_for(gateway)
        page.goto("/console/")
        page.locator(".badge-ok").first.wait_for()
        server = page.locator(".card", has_text="NATS server")
        assert "v2.15.1" in server.inner_text()
        assert "127.0.0.1" in server.inner_text()
        assert page.locator(".card", has_text="Sockets").locator(".value").inner_text() == "1"
        # The rates come from /stats samples: wait for a non-zero one on both charts.
        wait_for(lambda: "0.0/s" not in page.locator(".card", has_text="Publish rate").inner_text(), 10, "a publish rate")
        wait_for(lambda: "0.0/s" not in page.locator(".card", has_text="Delivery rate").inner_text(), 10, "a delivery rate")
        assert page.locator(".chart canvas").count() == 2
        assert page.locator("table", has_text="MARKET_DATA").locator(".badge").inner_text() in ("created", "in_sync")
        page.wait_for_timeout(3000)  # a few more samples for the screenshot's charts
        screenshot(page, "overview")

        page.goto("/console/#/streams")
        row = page.locator("tr[data-stream='MARKET_DATA']")
        wait_for(lambda: number(row.locator("td.rate").inner_text()) >= 50, 10, "the stream's msgs/s")
        page.wait_for_timeout(3000)  # a few points on the sparkline
        assert row.locator("svg.spark polyline").count() == 1
        screenshot(page, "streams")
    finally:
        traffic.stop()


def test_streams_list_and_a_streams_page_with_messages_consumers_and_purge(gateway, page_for):
    publish_market_data(gateway, 30)
    status, _, text = http(
        "POST", gateway.url("/admin/streams/MARKET_DATA/consumers"),
        json.dumps({"durable_name": "archiver", "filter_subject": "funding_rate.>"}),
        {"Content-Type": "application/json"},
    )
    assert status == 201, text
    page = page_for(gateway)
    page.goto("/console/#/streams")
    row = page.locator("tr[data-stream='MARKET_DATA']")
    row.wait_for()
    wait_for(lambda: "30" in row.locator("td").nth(2).inner_text(), 5, "30 messages")
    assert "funding_rate.>" in row.inner_text() and "1" == row.locator("td").nth(4).inner_text()
    wait_for(lambda: row.locator("svg.spark polyline").count() == 1, 10, "a sparkline")

    row.locator("a", has_text="MARKET_DATA").click()
    page.wait_for_url("**/console/#/streams/MARKET_DATA")
    page.locator("h2", has_text="Configuration").wait_for()
    assert "open_interest.>" in page.locator("table.kv").inner_text()
    message = page.locator(".message")
    wait_for(lambda: "#30" in message.inner_text(), 5, "the newest message")
    page.get_by_role("button", name="‹ Previous").click()
    wait_for(lambda: "#29" in message.inner_text(), 5, "message 29")
    assert '"data_type": "funding_rate"' in message.inner_text()
    page.locator("input[name='subject']").fill(OPEN_INTEREST)
    page.get_by_role("button", name="Show last").click()
    wait_for(lambda: "#30" in message.inner_text() and OPEN_INTEREST in message.inner_text(), 5, "the last open interest")
    assert "archiver" in page.locator("table", has_text="Delivered seq").inner_text()
    screenshot(page, "stream")

    page.get_by_role("button", name="Purge…").click()
    confirm = page.get_by_role("button", name="Purge MARKET_DATA")
    page.locator("input[name='confirm']").fill("MARKET")
    assert confirm.is_disabled()
    page.locator("input[name='confirm']").fill("MARKET_DATA")
    confirm.click()
    page.locator(".purge .ok", has_text="Purged 30 messages").wait_for()
    assert gateway.json("/admin/streams/MARKET_DATA")["state"]["messages"] == 0


def test_a_tail_deep_link_shows_a_message_published_with_curl_within_a_second(gateway, page_for):
    page = page_for(gateway)
    page.goto("/console/#/tail?subject=orderbook.binance.%3E")
    page.locator(".note", has_text="Subscribed to orderbook.binance.>").wait_for()
    curl = shutil.which("curl")
    assert curl, "curl is installed by scripts/install-test-deps.sh"
    subject = "orderbook.binance.perpetual.BTC-USDT"
    subprocess.run(
        [curl, "-sS", "-f", "-X", "POST", "-H", "Content-Type: application/json",
         "--data-binary", f"@{PAYLOADS / (subject + '.json')}", gateway.url(f"/publish/{subject}")],
        check=True, capture_output=True, timeout=10,
    )
    row = page.locator("table.tail-rows tbody tr", has_text=subject)
    row.wait_for(timeout=1000)
    assert '"data_type":"orderbook"' in row.inner_text()
    assert page.locator(".tail-bar .total").inner_text() == "1"
    screenshot(page, "tail")


def test_tail_replays_a_stream_and_pauses_filters_and_clears(gateway, page_for):
    publish_market_data(gateway, 6)
    page = page_for(gateway)
    page.goto("/console/#/tail")
    page.locator("input[name='subject']").fill("funding_rate.>, open_interest.>")
    page.locator("select[name='deliver']").select_option("last_per_subject")
    page.get_by_role("button", name="Start").click()
    rows = page.locator("table.tail-rows tbody tr")
    # The last message of each of the two subjects, then live.
    wait_for(lambda: rows.count() == 2, 5, "the last message per subject")
    assert "deliver=last_per_subject" in page.url
    page.locator(".note", has_text="caught up").first.wait_for()
    page.locator("input[name='pretty']").check()
    assert '"exchange": "binance"' in page.locator("table.tail-rows").inner_text()

    page.locator("input[name='filter']").fill("okx")
    wait_for(lambda: rows.count() == 1, 5, "the filter to leave one row")
    page.get_by_role("button", name="Pause").click()
    gateway.publish(OPEN_INTEREST, payload(OPEN_INTEREST), msg_id="paused")
    wait_for(lambda: page.locator(".tail-bar .total").inner_text() == "3", 5, "the paused message to be counted")
    assert rows.count() == 1, "a paused tail shows nothing new"
    page.get_by_role("button", name="Resume").click()
    gateway.publish(OPEN_INTEREST, payload(OPEN_INTEREST), msg_id="resumed")
    wait_for(lambda: rows.count() == 2, 5, "the message after resume")
    page.get_by_role("button", name="Clear").click()
    wait_for(lambda: rows.count() == 0, 5, "the rows to clear")


def test_publish_shows_the_receipt_a_duplicate_and_a_problem(gateway, page_for):
    page = page_for(gateway)
    page.watch.expect(400, "/publish/")
    page.goto("/console/#/publish")
    page.get_by_role("button", name="Publish", exact=True).click()
    receipt = page.locator(".receipt")
    receipt.wait_for()
    assert "200 Stored" in receipt.inner_text() and "MARKET_DATA" in receipt.inner_text()
    seq = int(receipt.locator(".seq").inner_text())
    stored = gateway.json(f"/admin/streams/MARKET_DATA/messages/{seq}")
    assert stored["data"]["data_type"] == "funding_rate"
    assert stored["headers"]["Nats-Msg-Id"][0].startswith("funding_rate:binance:BTC-USDT:")
    screenshot(page, "publish")

    page.get_by_role("button", name="Publish", exact=True).click()
    page.locator(".receipt", has_text="duplicate").wait_for()
    assert int(receipt.locator(".seq").inner_text()) == seq

    page.locator("input[name='subject']").fill("orders.*")
    page.get_by_role("button", name="Publish", exact=True).click()
    problem = page.locator(".problem")
    problem.wait_for()
    assert "400 Bad Request" in problem.inner_text() and "invalid_subject" in problem.inner_text()
