"""The client's retry and failover logic (libra_client.client) on scripted transports: order across chunks,
Retry-After, a dead replica skipped, typed errors when every retry fails, no retry of a 4xx."""

from __future__ import annotations

import json

import httpx
import pytest

from libra_client import AsyncLibraClient, RequestRejected


def transport(responses):
    """A MockTransport serving the scripted (url prefix -> list of responses or exceptions) in order."""
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        host = request.url.host
        script = responses[host]
        step = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(step, Exception):
            raise step
        if callable(step):
            return step(request)
        return step

    return httpx.MockTransport(handler), calls


def echo_scores(request: httpx.Request) -> httpx.Response:
    items = json.loads(request.content)["items"]
    return httpx.Response(200, json={"results": [
        {"id": it.get("id"), "index": i, "status": "ok", "reward": float(it["response"] == "right"), "verdict": "x"}
        for i, it in enumerate(items)], "model": "m", "judge": "j"})


async def test_results_in_input_order_across_chunks():
    mock, calls = transport({"a": [echo_scores]})
    items = [{"id": str(i), "question": "q", "response": "right" if i % 3 else "wrong"} for i in range(10)]
    async with AsyncLibraClient("http://a", chunk_size=3, transport=mock) as client:
        results = await client.score(items)
    assert [r.id for r in results] == [str(i) for i in range(10)]
    assert [r.index for r in results] == list(range(10))
    assert [r.reward for r in results] == [0.0 if i % 3 == 0 else 1.0 for i in range(10)]
    assert len(calls) == 4


async def test_429_waits_for_retry_after_then_succeeds(monkeypatch):
    slept = []

    async def fake_sleep(s):
        slept.append(s)

    monkeypatch.setattr("libra_client.client.asyncio.sleep", fake_sleep)
    mock, calls = transport({"a": [httpx.Response(429, headers={"Retry-After": "7"}, json={"error": {}}),
                                   httpx.Response(503, headers={"Retry-After": "2"}, json={"error": {}}),
                                   echo_scores]})
    async with AsyncLibraClient("http://a", transport=mock, backoff_base_s=0.01) as client:
        [r] = await client.score([{"question": "q", "response": "right"}])
    assert r.reward == 1.0 and len(calls) == 3
    assert slept[0] >= 7 and slept[1] >= 2


async def test_a_dead_replica_is_skipped_and_no_item_is_lost(monkeypatch):
    async def no_sleep(_s):
        return None

    monkeypatch.setattr("libra_client.client.asyncio.sleep", no_sleep)
    mock, calls = transport({"a": [httpx.ConnectError("refused")], "b": [echo_scores]})
    items = [{"id": str(i), "question": "q", "response": "right"} for i in range(20)]
    async with AsyncLibraClient(["http://a", "http://b"], chunk_size=4, transport=mock) as client:
        results = await client.score(items)
    assert [r.status for r in results] == ["ok"] * 20 and [r.id for r in results] == [str(i) for i in range(20)]
    assert sum("//a/" in c for c in calls) == 1  # taken out after its first failure


async def test_every_item_gets_a_typed_error_when_all_retries_fail(monkeypatch):
    async def no_sleep(_s):
        return None

    monkeypatch.setattr("libra_client.client.asyncio.sleep", no_sleep)
    mock, _ = transport({"a": [httpx.ConnectError("refused")]})
    async with AsyncLibraClient("http://a", transport=mock, max_retries=2) as client:
        results = await client.score([{"id": "x", "question": "q", "response": "r"}] * 3)
    assert [(r.status, r.reward) for r in results] == [("client_error", None)] * 3
    assert "refused" in results[0].error


async def test_a_4xx_is_not_retried():
    mock, calls = transport({"a": [httpx.Response(422, json={"error": {"message": "items.0.question: missing"}})]})
    async with AsyncLibraClient("http://a", transport=mock) as client:
        with pytest.raises(RequestRejected, match="items.0.question"):
            await client.score([{"response": "r"}])
    assert len(calls) == 1
