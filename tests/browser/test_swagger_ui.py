"""Swagger UI at /docs/, in a real browser: every operation expands without
a resolver error, "Try it out" publishes JSON and lists streams (to this
origin, offering no server choice), and
"Authorize" with a bearer token works on a gateway with `auth`."""

import json

from conftest import ADMIN_TOKEN, screenshot

SUBJECT = "funding_rate.binance.perpetual.BTC-USDT"


def open_docs(page):
    page.goto("/docs/")
    page.locator(".opblock").first.wait_for()


def operation(page, tag, operation_id):
    """The expanded operation block (Swagger UI ids: operations-<tag>-<operationId>)."""
    block = page.locator(f"#operations-{tag}-{operation_id}")
    if block.locator(".opblock-body").count() == 0:
        block.locator(".opblock-summary-control").click()
    block.locator(".opblock-body").wait_for()
    return block


def execute(block):
    block.locator(".execute").click()
    status = block.locator(".live-responses-table tbody td.response-col_status").first
    status.wait_for()
    body = block.locator(".live-responses-table tbody .highlight-code pre").first
    body.wait_for()
    return int(status.inner_text().strip()), body.inner_text()


def assert_no_servers_choice(block):
    """The document declares no servers, so there is nothing to choose: no
    per-operation "Servers" box (Swagger UI 5 offers "/" on every operation
    of an OpenAPI 3.1 document without one; src/swagger_ui/initializer.js).
    Called once the operation has executed, so it has been resolved."""
    assert block.locator(".operation-servers").count() == 0
    assert block.page.locator(".servers").count() == 0


def test_every_operation_expands_without_a_resolver_error(gateway, page_for):
    page = page_for(gateway)
    open_docs(page)
    blocks = page.locator(".opblock")
    count = blocks.count()
    documented = sum(len(item) for item in gateway.json("/openapi.json")["paths"].values())
    assert count == documented, f"{count} operations shown, {documented} documented"
    # All at once in the page: one click per operation, as a user would.
    page.evaluate("document.querySelectorAll('.opblock-summary-control').forEach((b) => b.click())")
    page.wait_for_function(f"document.querySelectorAll('.opblock-body').length === {count}", timeout=60_000)
    # Resolution happens as operations expand; give it the chance to fail.
    page.wait_for_load_state("networkidle")
    assert page.locator("text=Resolver error").count() == 0
    assert page.locator(".errors-wrapper").count() == 0
    # A 503 shows its own code, not the first one of the document.
    publish = page.locator("#operations-publish-publish_one")
    assert "nats_unavailable" in publish.locator("tr.response[data-code='503']").inner_text()


def test_try_it_out_publishes_the_json_example_and_lists_streams(gateway, page_for):
    page = page_for(gateway)
    open_docs(page)
    block = operation(page, "publish", "publish_one")
    block.locator(".try-out__btn").click()
    block.locator("input[placeholder='subject']").fill(SUBJECT)
    body = block.locator(".body-param textarea")
    # JSON is offered first, prefilled with a real funding-rate payload.
    assert json.loads(body.input_value())["data_type"] == "funding_rate"
    block.locator(".opblock-section-request-body").scroll_into_view_if_needed()
    screenshot(page, "swagger-publish")
    status, text = execute(block)
    receipt = json.loads(text)
    assert status == 200, text
    assert_no_servers_choice(block)
    request_url = block.locator(".request-url pre").inner_text()
    assert request_url == gateway.url(f"/publish/{SUBJECT}"), request_url
    assert receipt["stream"] == "MARKET_DATA" and receipt["seq"] >= 1
    stored = gateway.json(f"/admin/streams/MARKET_DATA/messages/{receipt['seq']}")
    assert stored["data"]["data_type"] == "funding_rate"

    block = operation(page, "admin", "list_streams")
    block.locator(".try-out__btn").click()
    status, text = execute(block)
    assert status == 200, text
    assert [s["name"] for s in json.loads(text)] == ["MARKET_DATA"]
    assert_no_servers_choice(block)


def test_authorize_with_a_bearer_token_works_for_protected_operations(token_gateway, page_for):
    page = page_for(token_gateway)
    page.watch.expect(401, "/admin/streams")
    open_docs(page)
    block = operation(page, "admin", "list_streams")
    block.locator(".try-out__btn").click()
    status, text = execute(block)
    assert status == 401 and json.loads(text)["code"] == "unauthorized"

    page.locator(".auth-wrapper .authorize").click()
    dialog = page.locator(".auth-container")
    dialog.locator("input").fill(ADMIN_TOKEN)
    dialog.locator("button.authorize").click()
    page.locator(".auth-btn-wrapper .btn-done").click()
    status, text = execute(block)
    assert status == 200, text
    assert [s["name"] for s in json.loads(text)] == ["MARKET_DATA"]

    block = operation(page, "publish", "publish_one")
    block.locator(".try-out__btn").click()
    block.locator("input[placeholder='subject']").fill(SUBJECT)
    status, text = execute(block)
    assert status == 200 and json.loads(text)["seq"] >= 1, text
