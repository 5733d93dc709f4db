"""Limits, backpressure, deadlines, auth, readiness, request ids and metrics, on the FakeEngine."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.api.admission import Admission
from service.engine.fake import FakeEngine
from service.metrics import metric_sum
from tests.helpers import make_client, perfect_nano_judge

ITEM = {"question": "What is 347 + 58?", "response": "347 + 58 = 405."}


def judging(engine) -> set[str]:
    """Engine requests still running, other than readiness probes."""
    return {rid for rid in engine.running if not rid.startswith("libra-ready")}


def metric(client, name, labels=None) -> float:
    return metric_sum(client.get("/metrics").text, name, labels)


def test_api_keys(engine, tmp_path):
    keyfile = tmp_path / "keys"
    keyfile.write_text("# team keys\nsecond-key\n")
    with make_client(engine, api_keys="first-key", api_keys_file=keyfile) as client:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "first-key"},
                        {"Authorization": "Basic first-key"}):
            resp = client.post("/score", json={"items": [ITEM]}, headers=headers)
            assert resp.status_code == 401, headers
            assert resp.json()["error"]["code"] == "unauthorized"
            assert resp.headers["www-authenticate"] == "Bearer"
        for key in ("first-key", "second-key"):
            resp = client.post("/score", json={"items": [ITEM]}, headers={"Authorization": f"Bearer {key}"})
            assert resp.status_code == 200
        assert client.get("/health").status_code == 200 and client.get("/ready").status_code == 200
        assert client.get("/metrics").status_code == 200
        assert client.get("/judges").status_code == 401
    with make_client(engine, api_keys="k", metrics_auth=True) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer k"}).status_code == 200


def test_body_limit_is_413_before_parsing(engine):
    with make_client(engine, max_body_bytes=2048) as client:
        resp = client.post("/score", json={"items": [{"question": "q", "response": "x" * 4000}]})
        assert resp.status_code == 413 and resp.json()["error"]["code"] == "payload_too_large"

        def chunks():  # no Content-Length: the limit is enforced while streaming
            for _ in range(10):
                yield b" " * 1000

        resp = client.post("/score", content=chunks(), headers={"content-type": "application/json"})
        assert resp.status_code == 413
        assert client.post("/score", json={"items": [ITEM]}).status_code == 200


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_content_type_must_be_json(engine, ctype):
    with make_client(engine) as client:
        resp = client.post("/score", content=b'{"items": []}', headers={"content-type": ctype} if ctype else {})
    assert resp.status_code == 415 and resp.json()["error"]["code"] == "unsupported_media_type"


def test_invalid_utf8_is_400(engine):
    with make_client(engine) as client:
        resp = client.post("/score", content=b'{"items": [{"question": "\xff\xfe", "response": "r"}]}',
                           headers={"content-type": "application/json"})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_json"


def test_an_item_over_the_text_limit_is_too_long_and_the_batch_is_answered(engine):
    """One over-long response must not fail a trainer's whole batch (verl and TRL would die on a 422)."""
    with make_client(engine, max_text_chars=100) as client:
        resp = client.post("/score", json={"items": [ITEM, {"question": "q", "response": "r" * 101}]})
        rewards = client.post("/get_reward", json={"query": ["q" * 200]}).json()
    assert resp.status_code == 200
    ok, long = resp.json()["results"]
    assert ok["status"] == "ok" and (long["status"], long["reward"]) == ("too_long", None)
    assert "the response is 101 characters" in long["message"]
    assert rewards["extra_logs"]["judge_failed"] == [1.0]


def test_limits_endpoint_reports_settings(engine):
    with make_client(engine, admission_budget=77, max_text_chars=99) as client:
        limits = client.get("/limits").json()
    assert limits["admission_budget"] == 77 and limits["max_text_chars"] == 99


def test_over_budget_is_429_with_retry_after(engine):
    with make_client(engine, admission_budget=10) as client:
        client.app.state.serving.admission.pending = 8  # another client's work in progress
        resp = client.post("/score", json={"items": [ITEM] * 3})
        assert resp.status_code == 429 and resp.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(resp.headers["retry-after"]) <= 60
        assert client.post("/score", json={"items": [ITEM] * 2}).status_code == 200
        assert metric(client, "libra_rejections_total", {"reason": "rate_limited"}) == 1
        client.app.state.serving.admission.pending = 0


def test_retry_after_follows_the_drain_rate():
    now = [100.0]
    adm = Admission(budget=100, window_s=30, clock=lambda: now[0])
    assert adm.try_admit(100) and not adm.try_admit(1)
    assert adm.retry_after(50) == 5  # nothing finished yet: a default
    for _ in range(10):
        now[0] += 1.0
        adm.release(10)  # 10 items/s
    adm.try_admit(100)
    assert adm.retry_after(50) == 5  # 50 excess items at ~10 items/s
    assert adm.retry_after(5000) == 60  # capped


def test_deadline_returns_everything_else_and_aborts_the_rest(nano_tokenizer):
    def slow_for_b(prompt, _i):
        return perfect_nano_judge(prompt, _i)

    engine = FakeEngine(nano_tokenizer, slow_for_b, max_model_len=1024, delay_s=1.5)
    with make_client(engine) as client:
        resp = client.post("/score", json={"items": [ITEM], "timeout_s": 0.2, "cache": False})
        [r] = resp.json()["results"]
        assert r["status"] == "timeout" and r["reward"] is None and "deadline" in r["message"]
        assert judging(engine) == set() and engine.aborted
        resp = client.post("/score", json={"items": [ITEM], "timeout_s": 10**6})
        assert resp.status_code == 422 and resp.json()["error"]["param"] == "timeout_s"


def test_request_id_is_echoed_or_made(engine):
    with make_client(engine) as client:
        assert client.get("/health", headers={"X-Request-ID": "trace-42"}).headers["x-request-id"] == "trace-42"
        made = client.get("/health", headers={"X-Request-ID": "bad id\twith junk"}).headers["x-request-id"]
        assert made != "bad id\twith junk" and len(made) == 32


def test_readiness_and_draining(engine):
    with make_client(engine) as client:
        assert client.get("/ready").json()["status"] == "ready"
        client.app.state.serving.lifecycle.draining = True
        assert client.get("/ready").status_code == 503
        resp = client.post("/score", json={"items": [ITEM]})
        assert resp.status_code == 503 and resp.headers["retry-after"]
        client.app.state.serving.lifecycle.draining = False
        engine.dead = True
        assert client.get("/ready").status_code == 503


async def test_watchdog_reports_a_dead_engine(engine):
    from service.lifecycle import Lifecycle

    died = asyncio.Event()
    life = Lifecycle(engine, probe_interval_s=0.05, max_age_s=1, on_dead=died.set)
    life.start()
    await asyncio.sleep(0.1)
    assert life.readiness()["status"] == "ready"
    engine.dead = True
    await asyncio.wait_for(died.wait(), timeout=3)
    assert life.dead
    await life.stop()


def test_metrics_count_what_was_scored(engine):
    with make_client(engine) as client:
        before = {s: metric(client, "libra_items_total", {"status": s}) for s in ("ok", "invalid")}
        client.post("/score", json={"items": [ITEM, {**ITEM, "response": "347 + 58 = 1."}]})
        client.post("/score", json={"judge": "libra-ref", "items": [ITEM]})  # invalid: no reference
        assert metric(client, "libra_items_total", {"status": "ok"}) - before["ok"] == 2
        assert metric(client, "libra_items_total", {"status": "invalid"}) - before["invalid"] == 1
        assert metric(client, "libra_verdicts_total", {"verdict": "incorrect"}) == 1
        assert metric(client, "libra_reward_count") == 2
        assert metric(client, "libra_requests_total", {"endpoint": "/score", "code": "200"}) == 2
        names = {f.name for f in text_string_to_metric_families(client.get("/metrics").text)}
    expected = {"libra_requests", "libra_request_duration_seconds", "libra_items", "libra_verdicts", "libra_reward",
                "libra_queue_depth", "libra_engine_requests_in_flight", "libra_item_duration_seconds",
                "libra_queue_wait_seconds", "libra_judge_duration_seconds", "libra_engine_tokens",
                "libra_reused_items", "libra_engine_tokens_saved", "libra_forced_verdicts", "libra_rejections"}
    assert expected <= names, expected - names


async def test_client_disconnect_cancels_engine_work(nano_tokenizer):
    """ASGI-level: a disconnect message while scoring cancels the engine request (real HTTP: integration)."""
    from tests.helpers import build_app_for

    engine = FakeEngine(nano_tokenizer, perfect_nano_judge, max_model_len=1024, delay_s=5)
    app = build_app_for(engine)
    async with app.router.lifespan_context(app):
        body = httpx.Request("POST", "http://t/score", json={"items": [ITEM], "cache": False}).read()
        sent = []
        messages = iter([{"type": "http.request", "body": body, "more_body": False}])

        async def receive():
            try:
                return next(messages)
            except StopIteration:
                await asyncio.sleep(0.2)
                return {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/score",
                 "headers": [(b"content-type", b"application/json")],
                 "query_string": b"", "root_path": "", "scheme": "http", "server": ("t", 80), "client": ("c", 1),
                 "http_version": "1.1", "app": app}
        await asyncio.wait_for(app(scope, receive, send), timeout=3)
        assert judging(engine) == set() and engine.aborted
