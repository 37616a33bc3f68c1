"""The console on a gateway with `auth`: it asks once for a token, keeps it
in sessionStorage (never in a URL), sends it as Bearer, opens its socket
with a ticket, and says plainly what a 401 or 403 means."""

from conftest import ADMIN_TOKEN, READER_TOKEN, screenshot, wait_for


def enter_token(page, token):
    dialog = page.locator(".modal")
    dialog.wait_for()
    dialog.locator("input[name='token']").fill(token)
    dialog.get_by_role("button", name="Use token").click()


def test_console_asks_for_a_token_and_explains_401_and_403(token_gateway, page_for):
    page = page_for(token_gateway)
    page.watch.expect(401, "/stats")
    page.watch.expect(401, "/admin/")
    page.watch.expect(403, "/admin/")
    page.watch.expect(403, "/publish/")
    page.goto("/console/")
    dialog = page.locator(".modal")
    dialog.wait_for()
    assert "auth" in dialog.inner_text()
    screenshot(page, "token")

    enter_token(page, "not-a-token")
    wait_for(lambda: "does not accept this token" in dialog.inner_text(), 5, "the 401 explained")
    enter_token(page, READER_TOKEN)
    page.locator(".card", has_text="Sockets").locator(".value", has_text="0").wait_for()
    assert page.locator(".modal").count() == 0
    assert page.evaluate("sessionStorage.getItem('marketprism.console.token')") == READER_TOKEN

    # A token that is not an admin: the Streams view says why it is empty.
    page.goto("/console/#/streams")
    problem = page.locator(".problem")
    problem.wait_for()
    assert "403" in problem.inner_text() and "forbidden" in problem.inner_text()
    assert "admin" in problem.locator(".hint").inner_text()

    # It may subscribe: the tail's socket opens with a ticket.
    page.goto("/console/#/tail?subject=funding_rate.%3E")
    page.locator(".note", has_text="Subscribed to funding_rate.>").wait_for()
    status, _ = token_gateway.publish("funding_rate.binance.perpetual.BTC-USDT", '{"rate":"0.0001"}', token=ADMIN_TOKEN)
    assert status == 200
    page.locator("table.tail-rows tbody tr").first.wait_for()

    # It may not publish.
    page.goto("/console/#/publish")
    page.get_by_role("button", name="Publish", exact=True).click()
    problem = page.locator(".problem")
    problem.wait_for()
    assert "forbidden" in problem.inner_text() and "publish" in problem.locator(".hint").inner_text()

    # Another token, once the first is forgotten: the admin sees the streams.
    page.get_by_role("button", name="forget").click()
    page.goto("/console/#/streams")
    enter_token(page, ADMIN_TOKEN)
    page.locator("tr[data-stream='MARKET_DATA']").wait_for()

    urls = page.watch.requests
    assert urls, "the page made requests"
    assert not [u for u in urls if READER_TOKEN in u or ADMIN_TOKEN in u], "a token in a URL"
    assert any("/subscribe?" in u and "ticket=" in u for u in page.watch.sockets)
