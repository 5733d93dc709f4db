"""Streamed /score on the real engine: one line per item as it is decided, the final line, the same
results as the batch answer, and a client that leaves mid-stream stops its engine work."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from libra_client import AsyncLibraClient, LibraClient
from nano import world
from tests.helpers import scrape, wait_until

pytestmark = pytest.mark.integration


def test_stream_lines_match_the_batch_answer(live_server):
    items = world.score_items(40, seed=31, id_prefix="s")
    items += [items[0] | {"id": "dup"}, {"id": "junk", "question": "What is 1 + 1?", "response": "Solution"}]
    with httpx.stream("POST", live_server.url_for("score"), json={"items": items, "stream": True, "cache": False},
                      timeout=300) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in resp.iter_lines() if line.strip()]
    *results, done = lines
    assert done["done"] is True and done["items"] == len(items) and sum(done["statuses"].values()) == len(items)
    assert sorted(r["index"] for r in results) == list(range(len(items)))
    assert results[0]["id"] == "junk"  # decided without the engine: first
    batch = httpx.post(live_server.url_for("score"), json={"items": items}, timeout=300).json()["results"]
    by_index = {r["index"]: r for r in results}
    assert [(by_index[i]["verdict"], by_index[i]["status"]) for i in range(len(items))] == [
        (r["verdict"], r["status"]) for r in batch]


def test_the_client_streams_in_completion_order(live_server):
    items = world.score_items(24, seed=32, id_prefix="s")

    async def collect():
        async with AsyncLibraClient(live_server.url) as client:
            return [r async for r in client.score_stream(items, cache=False)]

    import asyncio

    streamed = asyncio.run(collect())
    assert sorted(r.index for r in streamed) == list(range(24)) and all(r.reward is not None for r in streamed)
    assert [r.id for r in sorted(streamed, key=lambda r: r.index)] == [i["id"] for i in items]
    blocking = list(LibraClient(live_server.url).score_stream(items[:4]))
    assert sorted(r.index for r in blocking) == [0, 1, 2, 3]


def test_leaving_a_stream_aborts_its_engine_work(live_server):
    def busy() -> float:
        return scrape(live_server, "vllm:num_requests_running") + scrape(live_server, "vllm:num_requests_waiting")

    judged_before = scrape(live_server, "libra_items_total")
    items = world.score_items(800, seed=33, id_prefix="s")
    body = json.dumps({"items": items, "cache": False, "stream": True}).encode()
    sock = socket.create_connection(("127.0.0.1", live_server.port))
    sock.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    sock.settimeout(60)
    assert b"200 OK" in sock.recv(4096)  # streaming has begun
    # The engine must be busy before we leave, else leaving would prove nothing.
    assert wait_until(lambda: busy() > 0, 20) is not None, "the engine never started on the stream's items"
    sock.close()
    gone = time.perf_counter()
    idle = wait_until(lambda: busy() == 0 and scrape(live_server, "libra_engine_requests_in_flight") == 0, 15)
    assert idle is not None, "the engine kept working for a client that left its stream"
    # On a fast machine the engine could finish all 800 within the wait above; the items it
    # scored tell (the item counter counts a request's items when its scoring ends; an aborted one adds none).
    judged = scrape(live_server, "libra_items_total") - judged_before
    assert judged < 400, f"the engine judged {judged:.0f} of the 800 items of a stream left"
    print(f"\nstream left -> idle engine: {time.perf_counter() - gone:.2f} s; {judged:.0f} items judged")
