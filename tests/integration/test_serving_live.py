"""The production API against the running service and the real engine: disconnects, metrics contract,
hostile input, bursts over the admission budget, SIGTERM draining, and engine death with a trainer's client
failing over to the replica that lives."""

from __future__ import annotations

import json
import random
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest

from libra_client import LibraClient
from libra_eval.server_process import ServerProcess
from nano import world
from tests.helpers import QUICK_START, scrape, wait_until

pytestmark = pytest.mark.integration


def engine_busy(server) -> float:
    return scrape(server, "vllm:num_requests_running") + scrape(server, "vllm:num_requests_waiting")


def test_a_client_disconnect_aborts_its_engine_work(live_server):
    judged_before = scrape(live_server, "libra_items_total")
    body = json.dumps({"items": world.score_items(1000, seed=11), "cache": False}).encode()
    sock = socket.create_connection(("127.0.0.1", live_server.port))
    sock.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    assert wait_until(lambda: engine_busy(live_server) > 0, 20) is not None
    sock.close()
    gone = time.perf_counter()
    idle = wait_until(lambda: engine_busy(live_server) == 0 and scrape(live_server, "libra_engine_requests_in_flight")
                      == 0, 15)
    assert idle is not None, "the engine kept working for a client that left"
    # On a fast machine the engine could finish all 1,000 within the wait above; the items it
    # scored tell (the item counter counts a request's items when its scoring ends; an aborted one adds none).
    judged = scrape(live_server, "libra_items_total") - judged_before
    assert judged < 500, f"the engine judged {judged:.0f} of the 1,000 items of a client that left"
    print(f"\ndisconnect -> idle engine: {time.perf_counter() - gone:.2f} s (1,000 items would take ~25 s); "
          f"{judged:.0f} items judged")


def test_metrics_contract_after_a_scoring_run(live_server):
    ok_items = world.score_items(5, seed=12)
    before = {s: scrape(live_server, "libra_items_total", {"status": s}) for s in ("ok", "invalid")}
    requests_before = scrape(live_server, "libra_requests_total", {"endpoint": "/score", "code": "200"})
    verdicts_before = scrape(live_server, "libra_verdicts_total")
    rewards_before = scrape(live_server, "libra_reward_count")
    r1 = httpx.post(live_server.url_for("score"), json={"items": ok_items, "cache": False}, timeout=120)
    r2 = httpx.post(live_server.url_for("score"), json={"judge": "libra-ref", "items": ok_items[:2]}, timeout=120)
    assert r1.status_code == r2.status_code == 200
    assert [r["status"] for r in r2.json()["results"]] == ["invalid", "invalid"]
    assert scrape(live_server, "libra_items_total", {"status": "ok"}) - before["ok"] == 5
    assert scrape(live_server, "libra_items_total", {"status": "invalid"}) - before["invalid"] == 2
    assert scrape(live_server, "libra_requests_total", {"endpoint": "/score", "code": "200"}) - requests_before == 2
    assert scrape(live_server, "libra_verdicts_total") - verdicts_before == 5
    assert scrape(live_server, "libra_reward_count") - rewards_before == 5
    text = httpx.get(live_server.url_for("metrics")).text
    for name in ("libra_requests_total", "libra_request_duration_seconds_bucket", "libra_items_total",
                 "libra_verdicts_total", "libra_reward_bucket", "libra_queue_depth",
                 "libra_engine_requests_in_flight", "libra_item_duration_seconds_bucket",
                 "libra_queue_wait_seconds_bucket", "libra_judge_duration_seconds_bucket", "libra_engine_tokens_total",
                 "libra_reused_items_total", "libra_forced_verdicts_total", "libra_rejections_total",
                 "vllm:kv_cache_usage_perc", "vllm:num_requests_running", "vllm:num_requests_waiting",
                 "vllm:prefix_cache_hits_total"):
        assert f"\n{name}" in text, name


LONG = "x" * 300_000
HOSTILE = [
    # (id, raw body or JSON-able object, headers, expected status, expected param or message fragment)
    ("not-json", b"{items: nope", None, 400, "invalid_json"),
    ("empty-body", b"", None, 400, "invalid_json"),
    ("invalid-utf8", b'{"items": [{"question": "\xc3\x28", "response": "r"}]}', None, 400, "invalid_json"),
    ("truncated-json", b'{"items": [{"question": "q", "respo', None, 400, "invalid_json"),
    ("json-array", [1, 2, 3], None, 422, "body"),
    ("json-string", "items", None, 422, "body"),
    ("json-null", None, None, 400, "invalid_json"),
    ("no-items", {}, None, 422, "items"),
    ("items-null", {"items": None}, None, 422, "items"),
    ("items-empty", {"items": []}, None, 422, "items"),
    ("items-object", {"items": {"question": "q"}}, None, 422, "items"),
    ("items-string", {"items": "q"}, None, 422, "items"),
    ("item-null", {"items": [None]}, None, 422, "items.0"),
    ("item-list", {"items": [["q", "r"]]}, None, 422, "items.0"),
    ("question-missing", {"items": [{"response": "r"}]}, None, 422, "items.0.question"),
    ("response-missing", {"items": [{"question": "q"}]}, None, 422, "items.0.response"),
    ("question-null", {"items": [{"question": None, "response": "r"}]}, None, 422, "items.0.question"),
    ("question-int", {"items": [{"question": 7, "response": "r"}]}, None, 422, "items.0.question"),
    ("response-bool", {"items": [{"question": "q", "response": True}]}, None, 422, "items.0.response"),
    ("response-object", {"items": [{"question": "q", "response": {"$ne": 1}}]}, None, 422, "items.0.response"),
    ("reference-list", {"items": [{"question": "q", "response": "r", "reference": [1]}]}, None, 422,
     "items.0.reference"),
    ("unknown-item-field", {"items": [{"question": "q", "response": "r", "score": 1}]}, None, 422, "items.0.score"),
    ("unknown-top-field", {"items": [{"question": "q", "response": "r"}], "reward": 1}, None, 422, "reward"),
    ("id-too-long", {"items": [{"id": "i" * 300, "question": "q", "response": "r"}]}, None, 422, "items.0.id"),
    ("id-int", {"items": [{"id": 5, "question": "q", "response": "r"}]}, None, 422, "items.0.id"),
    ("too-many-items", {"items": [{"question": "q", "response": "r"}] * 5000}, None, 422, "items"),
    ("samples-negative", {"items": [{"question": "q", "response": "r"}], "samples": -1}, None, 422, "samples"),
    ("samples-huge", {"items": [{"question": "q", "response": "r"}], "samples": 10**9, "temperature": 1}, None,
     422, "samples"),
    ("samples-float", {"items": [{"question": "q", "response": "r"}], "samples": 2.5}, None, 422, "samples"),
    ("samples-string-greedy", {"items": [{"question": "q", "response": "r"}], "samples": "3", "temperature": 0}, None,
     422, "temperature"),
    ("temperature-nan", b'{"items": [{"question": "q", "response": "r"}], "temperature": NaN}', None, 422,
     "temperature"),
    ("temperature-huge", {"items": [{"question": "q", "response": "r"}], "temperature": 1e300}, None, 422,
     "temperature"),
    ("timeout-negative", {"items": [{"question": "q", "response": "r"}], "timeout_s": -5}, None, 422, "timeout_s"),
    ("timeout-huge", {"items": [{"question": "q", "response": "r"}], "timeout_s": 1e12}, None, 422, "timeout_s"),
    ("budget-zero", {"items": [{"question": "q", "response": "r"}], "max_thinking_tokens": 0}, None, 422,
     "max_thinking_tokens"),
    ("budget-huge", {"items": [{"question": "q", "response": "r"}], "max_thinking_tokens": 2**62}, None, 422,
     "max_thinking_tokens"),
    ("unknown-judge", {"items": [{"question": "q", "response": "r"}], "judge": "../../etc/passwd"}, None, 422,
     "judge"),
    ("judge-int", {"items": [{"question": "q", "response": "r"}], "judge": 3}, None, 422, "judge"),
    ("deep-nesting", b'{"items": ' + b"[" * 5000 + b"]" * 5000 + b"}", None, 400, "invalid_json"),
    ("shallow-nesting", b'{"items": ' + b"[" * 50 + b"]" * 50 + b"}", None, 422, "items.0"),
    ("json-bomb-keys", b'{"items": [{"question": "q", "response": "r"}], ' +
     b", ".join(b'"k%d": 1' % i for i in range(20000)) + b"}", None, 422, "k0"),
    ("body-too-large", b'{"items": [{"question": "q", "response": "' + b"a" * (65 * 2**20) + b'"}]}', None, 413,
     "payload_too_large"),
    ("text-plain", {"items": [{"question": "q", "response": "r"}]}, {"content-type": "text/plain"}, 415,
     "unsupported_media_type"),
    ("form", b"items=1", {"content-type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
    ("top-p-zero", {"items": [{"question": "q", "response": "r"}], "top_p": 0}, None, 422, "top_p"),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c[0]) for c in HOSTILE])
def test_hostile_input_gets_a_specific_4xx(live_server, case):
    _, body, headers, status, expect = case
    hdrs = {"content-type": "application/json", **(headers or {})}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    resp = httpx.post(live_server.url_for("score"), content=content, headers=hdrs, timeout=120)
    assert resp.status_code == status, resp.text[:300]
    error = resp.json()["error"]
    assert error["message"]
    assert expect in (error["param"] or "", error["code"]) or expect in error["message"], error


def test_a_huge_field_makes_its_item_too_long_and_the_rest_is_judged(live_server):
    """Over the text limit is a per-item status: one runaway response must not fail a trainer's batch."""
    items = [{"question": "q", "response": LONG}, {"question": "What is 347 + 58?", "response": "347 + 58 = 405."}]
    resp = httpx.post(live_server.url_for("score"), json={"items": items}, timeout=120)
    assert resp.status_code == 200, resp.text[:300]
    huge, ok = resp.json()["results"]
    assert (huge["status"], huge["reward"]) == ("too_long", None) and "characters" in huge["message"]
    assert (ok["status"], ok["reward"]) == ("ok", 1.0)


def test_a_malformed_content_length_is_refused(live_server):
    with socket.create_connection(("127.0.0.1", live_server.port)) as sock:
        sock.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: abc\r\n\r\n{}")
        assert sock.recv(4096).split(b"\r\n")[0].split(b" ")[1] == b"400"


def test_duplicate_ids_and_control_characters_are_scored(live_server):
    items = [{"id": "same", "question": "What is 12 + 30?", "response": "12 + 30 = 42.\x00\x1b[2J"},
             {"id": "same", "question": "What is 12 + 30?\u202e", "response": "12 + 30 = 52."}]
    resp = httpx.post(live_server.url_for("score"), json={"items": items}, timeout=120)
    assert resp.status_code == 200
    assert [r["id"] for r in resp.json()["results"]] == ["same", "same"]
    assert [r["index"] for r in resp.json()["results"]] == [0, 1]


def test_the_service_still_scores_after_the_hostile_corpus(live_server):
    resp = httpx.post(live_server.url_for("score"), timeout=120, json={"items": [
        {"question": "What is 347 + 58?", "response": "347 + 58 = 405."},
        {"question": "What is 347 + 58?", "response": "347 + 58 = 415."}]})
    assert [r["verdict"] for r in resp.json()["results"]] == ["correct", "incorrect"]
    assert httpx.get(live_server.url_for("ready")).status_code == 200


@pytest.fixture
def small_budget_server(tmp_path):
    with ServerProcess(QUICK_START, log_path=tmp_path / "server.log", env={"LIBRA_ADMISSION_BUDGET": "64",
                                                               "LIBRA_SHUTDOWN_GRACE_S": "60"}) as server:
        yield server


def test_burst_of_four_times_the_budget_then_sigterm_drains(small_budget_server):
    server = small_budget_server
    batches = [world.score_items(16, seed=100 + i) for i in range(16)]  # 256 items = 4 x the budget of 64

    def post(items):
        resp = httpx.post(server.url_for("score"), json={"items": items, "cache": False}, timeout=300)
        return resp.status_code, resp.headers.get("retry-after"), resp.json()

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(post, batches))
    codes = [code for code, _, _ in outcomes]
    print(f"\nburst of 16 x 16 items against a budget of 64: 200={codes.count(200)} 429={codes.count(429)} "
          f"5xx={sum(c >= 500 for c in codes)}")
    assert all(c in (200, 429) for c in codes)
    assert codes.count(429) >= 1 and codes.count(200) >= 4
    for code, retry_after, body in outcomes:
        if code == 429:
            assert body["error"]["code"] == "rate_limited" and 1 <= int(retry_after) <= 60
        else:
            assert len(body["results"]) == 16 and all(r["status"] == "ok" for r in body["results"])
    assert scrape(server, "libra_rejections_total", {"reason": "rate_limited"}) == codes.count(429)

    # SIGTERM mid-request: the in-flight request still completes, then the process exits 0.
    result = {}
    worker = threading.Thread(target=lambda: result.update(out=post(world.score_items(48, seed=999))))
    worker.start()
    assert wait_until(lambda: engine_busy(server) > 0, 20) is not None
    server.proc.send_signal(signal.SIGTERM)
    worker.join(120)
    code, _, body = result["out"]
    assert code == 200 and len(body["results"]) == 48 and all(r["status"] == "ok" for r in body["results"])
    assert server.proc.wait(60) == 0


def test_an_engine_killed_mid_run_fails_fast_exits_non_zero_and_the_client_fails_over(live_server, tmp_path):
    """One disposable server, its engine core killed while it holds two kinds of work: a plain request of
    600 items (answered 503 engine_unavailable, /ready 503 within 5 s, the process exits non-zero) and a
    trainer's client spread over it and ``live_server`` (every item still gets its result, from the
    replica that lives). One engine start serves both checks: the server is spent either way."""
    rng = random.Random(21)
    drawn = [world.make_item(rng, "eval") for _ in range(400)]
    items = [{"id": f"i{i}", "question": it.question, "response": it.response} for i, it in enumerate(drawn)]
    with ServerProcess(QUICK_START, log_path=tmp_path / "server.log") as server:
        result, trained = {}, {}
        worker = threading.Thread(target=lambda: result.update(resp=httpx.post(
            server.url_for("score"), json={"items": world.score_items(600, seed=5), "cache": False}, timeout=120)))
        worker.start()
        assert wait_until(lambda: engine_busy(server) > 0, 20) is not None
        client = LibraClient([server.url, live_server.url], chunk_size=20, max_concurrency=8,
                             replica_cooldown_s=60, backoff_base_s=0.2)
        trainer = threading.Thread(target=lambda: trained.update(results=client.score(items, cache=False)))
        trainer.start()
        # The client's first chunks are admitted on the doomed server too (beside the 600) before the kill.
        assert wait_until(lambda: scrape(server, "libra_queue_depth") > 600, 30) is not None
        cores = [p for p in psutil.Process(server.proc.pid).children(recursive=True)
                 if "EngineCore" in " ".join(p.cmdline()) or "EngineCore" in p.name()]
        assert cores, [p.cmdline() for p in psutil.Process(server.proc.pid).children(recursive=True)]
        killed = time.perf_counter()
        for p in cores:
            p.kill()

        def not_ready() -> bool:
            try:
                return httpx.get(server.url_for("ready"), timeout=1).status_code == 503
            except httpx.TimeoutException:
                return False  # a server too busy to answer has not said it is not ready
            except httpx.TransportError:
                return True  # already gone (connection refused): not ready either

        to_503 = wait_until(not_ready, 10)
        worker.join(30)
        answered = time.perf_counter() - killed
        assert to_503 is not None and to_503 <= 5, to_503
        resp = result["resp"]
        assert resp.status_code == 503 and resp.json()["error"]["code"] == "engine_unavailable"
        code = server.proc.wait(30)
        print(f"\nengine kill -> /ready 503: {to_503:.2f} s; in-flight request answered 503 after "
              f"{answered:.2f} s; process exit code {code}")
        assert code != 0
        trainer.join(300)
    results = trained["results"]
    assert [r.id for r in results] == [it["id"] for it in items]
    assert all(r.status == "ok" for r in results), {r.status for r in results}
    right = sum(r.verdict == ("correct" if it.label else "incorrect") for r, it in zip(results, drawn, strict=True))
    assert right / len(items) >= 0.95
