"""The streaming contract on the FakeEngine: admitted whole before the first byte, a line per item as it
is decided, error lines and the final line when the engine dies mid-stream; and the client's resume of a
broken stream (only the items it has not received are asked for again)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from libra_client import AsyncLibraClient
from service.engine.fake import FakeEngine
from tests.helpers import build_app_for, make_client, perfect_nano_judge

ITEMS = [{"question": "What is 347 + 58?", "response": f"347 + 58 = {405 + i}."} for i in range(6)]


def lines_of(resp) -> list[dict]:
    return [json.loads(line) for line in resp.text.splitlines() if line.strip()]


def test_a_full_budget_is_a_429_before_any_byte(nano_tokenizer):
    engine = FakeEngine(nano_tokenizer, perfect_nano_judge, max_model_len=1024)
    with make_client(engine, admission_budget=3) as client:
        resp = client.post("/score", json={"items": ITEMS, "stream": True})
        assert resp.status_code == 429 and resp.json()["error"]["code"] == "rate_limited"
        assert "Retry-After" in resp.headers


def test_an_engine_death_mid_stream_ends_with_error_lines_and_the_final_line(nano_tokenizer):
    # The kill lands 0.1 s in, while the shared question's primer is still in flight (1.5 s): the items
    # meet a dead engine, with margin for a slow machine.
    engine = FakeEngine(nano_tokenizer, perfect_nano_judge, max_model_len=1024, delay_s=1.5)
    with make_client(engine) as client:
        async def kill_soon():
            await asyncio.sleep(0.1)
            engine.dead = True

        with client.stream("POST", "/score", json={"items": ITEMS, "stream": True, "cache": False}) as resp:
            client.portal.start_task_soon(kill_soon)
            lines = [json.loads(line) for line in resp.iter_lines() if line.strip()]
    *results, done = lines
    assert done["done"] is True and sorted(r["index"] for r in results) == list(range(6))
    assert {r["status"] for r in results} == {"error"} and done["statuses"] == {"error": 6}


async def test_the_client_resumes_a_broken_stream_with_the_missing_items_only(nano_tokenizer):
    engine = FakeEngine(nano_tokenizer, perfect_nano_judge, max_model_len=1024)
    app = build_app_for(engine)
    asked: list[int] = []

    class Breaking(httpx.AsyncBaseTransport):
        """The real app, except that the first stream is cut after two lines (a connection lost)."""

        def __init__(self):
            self.inner = httpx.ASGITransport(app=app)
            self.first = True

        async def handle_async_request(self, request):
            asked.append(len(json.loads(request.content)["items"]))
            response = await self.inner.handle_async_request(request)
            if not self.first:
                return response
            self.first = False
            body = b"".join([chunk async for chunk in response.stream])
            cut = b"".join(line + b"\n" for line in body.split(b"\n")[:2])
            return httpx.Response(200, headers=response.headers, content=cut)

    async with app.router.lifespan_context(app):
        client = AsyncLibraClient("http://test", transport=Breaking(), backoff_base_s=0.01)
        async with client:
            got = [r async for r in client.score_stream(ITEMS, cache=False)]
    assert asked == [6, 4]  # the second request carries only the four items not received
    assert sorted(r.index for r in got) == list(range(6))
    assert [r.verdict for r in sorted(got, key=lambda r: r.index)] == ["correct"] + ["incorrect"] * 5


async def test_the_client_raises_when_it_cannot_finish(nano_tokenizer):
    def always_cut(request):
        return httpx.Response(200, headers={"content-type": "application/x-ndjson"}, content=b"")

    client = AsyncLibraClient("http://test", transport=httpx.MockTransport(always_cut), max_retries=2,
                              backoff_base_s=0.01)
    async with client:
        with pytest.raises(RuntimeError, match="stream incomplete after 3 attempts: 6 of 6"):
            [r async for r in client.score_stream(ITEMS)]
