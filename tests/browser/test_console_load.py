"""The Tail view under load: 2,000 messages a second for several seconds.
The page keeps answering clicks, renders at most about ten times a second,
keeps a bounded number of rows and a bounded heap, and accounts for every
message (received, or counted as dropped by the gateway)."""

import time

from conftest import screenshot, wait_for
from test_console import Traffic

RATE = 2000
SECONDS = 5
ROWS = 500
LIVE_ROWS = 100


def number(page, selector):
    return int(page.locator(selector).inner_text().replace(",", ""))


def test_tail_stays_responsive_and_bounded_at_2000_messages_a_second(gateway, page_for):
    page = page_for(gateway)
    page.goto("/console/#/tail?subject=trade.%3E&policy=drop")
    page.locator(".note", has_text="Subscribed to trade.>").wait_for()
    # The longest the page's event loop was late, sampled every 50 ms.
    page.evaluate("""() => {
        window.lag = 0;
        let last = performance.now();
        setInterval(() => {
            const now = performance.now();
            window.lag = Math.max(window.lag, now - last - 50);
            last = now;
        }, 50);
    }""")
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable")

    def heap_mib():
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        return metrics["JSHeapUsedSize"] / 2**20

    stats = page.locator(".tail-bar .stats")
    renders_before = int(stats.get_attribute("data-renders"))
    traffic = Traffic(gateway, rate=RATE, batch=100)
    started = time.monotonic()
    traffic.start()
    try:
        rows = page.locator("table.tail-rows tbody tr")
        wait_for(lambda: number(page, ".tail-bar .kept") == ROWS, 10, f"{ROWS} rows kept")
        wait_for(lambda: number(page, ".tail-bar .rate") >= RATE * 0.7, 10, "the rate near 2,000/s")
        screenshot(page, "tail")
        heaps = []
        measuring = time.monotonic()
        while time.monotonic() - measuring < SECONDS:
            assert rows.count() <= LIVE_ROWS and number(page, ".tail-bar .kept") <= ROWS
            heaps.append(heap_mib())
            time.sleep(0.5)
        # Responsive during the flood: a click takes effect at once.
        clicked = time.monotonic()
        page.get_by_role("button", name="Pause").click()
        page.locator(".state-paused").wait_for(timeout=2000)
        pause_ms = (time.monotonic() - clicked) * 1000
        wait_for(lambda: rows.count() == ROWS, 5, "all kept rows while paused")
        page.get_by_role("button", name="Resume").click()
        page.locator(".state-open").wait_for(timeout=2000)
    finally:
        traffic.stop()
    elapsed = time.monotonic() - started
    renders = int(stats.get_attribute("data-renders")) - renders_before

    # Every message is accounted for: received by the page or dropped (and counted) by the gateway.
    def accounted():
        dropped = page.locator(".tail-bar .warn")
        shed = int(dropped.inner_text().split()[0].replace(",", "")) if dropped.count() else 0
        return number(page, ".tail-bar .total") + shed == traffic.sent

    wait_for(accounted, 10, f"all {traffic.sent} messages received or counted as dropped")
    assert traffic.sent >= RATE * SECONDS * 0.8, f"the publisher kept up: {traffic.sent}"
    assert number(page, ".tail-bar .kept") == ROWS
    lag = page.evaluate("window.lag")
    print(f"\n  tail at {RATE}/s: {renders / elapsed:.1f} renders/s, max event-loop lag {lag:.0f} ms, "
          f"pause click {pause_ms:.0f} ms, heap {min(heaps):.1f}-{max(heaps):.1f} MiB")
    assert renders / elapsed <= 12, f"{renders} renders in {elapsed:.1f}s"
    assert lag < 1000, f"the event loop was {lag:.0f} ms late"
    assert pause_ms < 2000, f"a click took {pause_ms:.0f} ms"
    assert max(heaps) < 64, f"heap grew to {max(heaps):.1f} MiB"
