"""HTTP/2 scenarios with httpx (h2), run by tests/http2.rs against a live gateway.

    client.py BASE_URL SCENARIO

Prints one JSON object with what it saw; the Rust test asserts on it.
Prior knowledge (h2c): httpx with http1=False, http2=True.
"""
import asyncio
import json
import sys

import httpx

BASE = sys.argv[1]
TIMEOUT = httpx.Timeout(20.0)


def client():
    return httpx.AsyncClient(base_url=BASE, http1=False, http2=True, timeout=TIMEOUT)


def connections(c):
    return len(c._transport._pool.connections)


async def publish_batch_admin():
    async with client() as c:
        one = await c.post("/publish/funding_rate.okx.perpetual.BTC-USDT", content=b'{"rate":1}')
        batch = await c.post(
            "/publish",
            headers={"content-type": "application/x-ndjson"},
            content=b'{"subject":"trade.okx.spot.BTC-USDT","data":{"p":1}}\n'
            b'{"subject":"trade.*","data":1}\n',
        )
        admin = await c.get("/admin/streams")
        # A raw ">" as typed: what does httpx put on the wire?
        gt = c.build_request("GET", "/events?subject=h2.gt.>")
        events = await c.send(gt, stream=True)
        await events.aclose()
        return {
            "publish": [one.http_version, one.status_code, one.json()],
            "batch": [batch.http_version, batch.status_code, batch.json()],
            "admin": [admin.http_version, admin.status_code],
            "raw_gt": [gt.url.raw_path.decode(), events.http_version, events.status_code],
            "connections": connections(c),
        }


async def next_event(lines):
    """The next `event:` name of an SSE stream."""
    async for line in lines:
        if line.startswith("event:"):
            return line.split(":", 1)[1].strip()
    return None


async def ten_sse_streams():
    # The streams are read one after the other: httpcore stalls a reader
    # whose events another reader already took off the connection, so
    # concurrent readers would measure httpcore, not the gateway.
    async with client() as c:
        streams = []
        for i in range(10):
            req = c.build_request("GET", "/events", params={"subject": f"h2.sse.{i}.>"})
            streams.append(await c.send(req, stream=True))
        lines = [s.aiter_lines() for s in streams]
        events = [[await next_event(l)] for l in lines]
        for i in range(10):
            p = await c.post(f"/publish/h2.sse.{i}.x", content=b'{"n":%d}' % i)
            assert p.status_code == 202, p.text
        for i, l in enumerate(lines):
            events[i].append(await next_event(l))
        versions = sorted({r.http_version for r in streams})
        open_connections = connections(c)
        for r in streams:
            await r.aclose()
        return {"versions": versions, "events": events, "connections": open_connections}


async def main():
    scenario = {"publish_batch_admin": publish_batch_admin, "ten_sse_streams": ten_sse_streams}[sys.argv[2]]
    print(json.dumps(await scenario()))


asyncio.run(main())
