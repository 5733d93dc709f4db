"""The application on Ray Serve, end to end on CPU: two nano-judge replicas behind Ray's HTTP proxy.

The same routes and contract as ``libra-serve serve`` and the same verdicts; every replica's metrics in one
scrape, labelled; what Ray's own queue answers when full; a saturated replica's 429 reaching the client with
Retry-After; and a replica whose engine core is killed being replaced by Ray while the retrying client still
gets every result (last: it replaces a replica).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from libra_client import LibraClient
from service.metrics import metric_sum
from tests.helpers import SERVE_VERDICTS, heldout, wait_until
from tests.ray.support import ADMISSION_BUDGET, CountingTransport, alive, engine_core, replicas

ITEMS = [{"id": "a", "question": "What is 347 + 58?", "response": "347 + 58 = 405. The answer is 405."},
         {"id": "b", "question": "What is 347 + 58?", "response": "347 + 58 = 415. The answer is 415."}]


def chatml(question: str) -> str:
    return f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


def test_the_routes_of_libra_serve_through_rays_proxy(ray_app):
    with httpx.Client(base_url=ray_app.url, timeout=120) as http:
        assert http.get("/health").json() == {"status": "ok"}
        assert http.get("/ready").json()["status"] == "ready"
        assert http.get("/judges").json()["default"] == "nano"
        assert http.get("/limits").json()["admission_budget"] == ADMISSION_BUDGET
        body = http.post("/score", json={"items": ITEMS}).json()
        assert [(r["id"], r["verdict"], r["reward"]) for r in body["results"]] == [("a", "correct", 1.0),
                                                                                   ("b", "incorrect", 0.0)]
        prompts = [chatml("What is 347 + 58?")] * 2
        rewards = http.post("/get_reward", json={"query": [p + r for p, r in zip(prompts, ["347 + 58 = 405.",
                            "347 + 58 = 415."], strict=True)], "prompts": prompts, "labels": ["405", "405"]}).json()
        assert rewards["rewards"] == [1.0, 0.0]
        slime = http.post("/slime/reward", json={"prompt": prompts[0], "response": "347 + 58 = 405.", "label": "405"})
        assert slime.json()["reward"] == 1.0
        # Errors are the app's envelope, not Ray's: every path reaches a replica.
        assert http.get("/no-such-path").json()["error"]["code"] == "not_found"
        assert http.post("/score", content=b"{", headers={"content-type": "application/json"}).json()["error"][
            "code"] == "invalid_json"
        assert "/score" in http.get("/openapi.json").json()["paths"]


def test_streamed_score_arrives_line_by_line_through_rays_proxy(ray_app):
    """Ray's proxy relays the NDJSON stream as it is written, not buffered: the item decided without the
    engine arrives well before the judged ones and the final line."""
    # As many judged items as fit one replica's admission budget (more get 429): several waves of decode.
    items = [{"id": "junk", "question": "What is 1 + 1?", "response": "Solution"}, *heldout(920, ADMISSION_BUDGET - 8)]
    arrivals = []
    start = time.monotonic()
    with httpx.stream("POST", ray_app.url + "/score", json={"items": items, "stream": True}, timeout=300) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"] == "application/x-ndjson"
        for line in resp.iter_lines():
            if line.strip():
                arrivals.append((time.monotonic() - start, json.loads(line)))
    (first_s, first), *_, (done_s, done) = arrivals
    assert first["id"] == "junk" and done["done"] is True and done["items"] == len(items) == len(arrivals) - 1
    assert done_s - first_s > 0.5, (first_s, done_s)


def test_same_verdicts_as_libra_serve_serve(ray_app):
    """The replicas judge as ``libra-serve serve`` does: its greedy verdicts on these items are recorded in
    tests/fixtures/nano_serve_verdicts.json, and make test checks the live ``libra-serve serve`` still gives
    them (tests/integration/test_recorded_verdicts.py), so no plain server is started beside the replicas."""
    recorded = json.loads(SERVE_VERDICTS.read_text())
    items = heldout(recorded["start"], len(recorded["verdicts"]))
    through_ray = LibraClient(ray_app.url, chunk_size=16, max_concurrency=2).score(items)
    assert [r.status for r in through_ray] == ["ok"] * len(items)
    assert [[r.id, r.verdict, r.reward] for r in through_ray] == recorded["verdicts"]


def test_every_replicas_metrics_in_one_scrape_labelled_replica(ray_app):
    live = set(replicas())
    assert len(live) == 2
    for i in range(4):  # some traffic on both replicas (Ray balances between them)
        httpx.post(ray_app.url + "/score", json={"items": heldout(100 + 4 * i, 4)}, timeout=120)
    deadline = time.monotonic() + 30
    while True:
        text = httpx.get(ray_app.url + "/metrics", timeout=30).text
        families = {f.name: f for f in text_string_to_metric_families(text)}
        labelled = {name: {s.labels.get("replica") for s in f.samples} for name, f in families.items()}
        if labelled.get("libra_requests") == live or time.monotonic() > deadline:
            break
        time.sleep(1)
    for name in ("libra_requests", "libra_items", "libra_queue_depth", "vllm:num_requests_running",
                 "vllm:kv_cache_usage_perc", "vllm:prompt_tokens"):
        assert labelled.get(name) == live, (name, labelled.get(name), live)
    assert all(None not in replicas_ for replicas_ in labelled.values())  # no sample without its replica
    served = {s.labels["replica"] for s in families["libra_requests"].samples
              if s.labels["endpoint"] == "/score" and s.labels["code"] == "200"}
    print(f"\n[ray] /metrics: {len(families)} families, replicas {sorted(live)}; /score answered by {sorted(served)}")


async def burst(url: str, n: int, **kwargs) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=120) as client:
        return await asyncio.gather(*(client.request(url=url, **kwargs) for _ in range(n)))


def test_what_rays_own_queue_answers_when_full(ray_app):
    """One request in flight and one queued per proxy, a burst of 4: Ray refuses the rest itself, with 503 and
    no Retry-After by default, or as configured here (backpressure_config) 429 with Retry-After."""
    default = asyncio.run(burst(ray_app.url + "/queue-default", 4, method="GET"))
    ours = asyncio.run(burst(ray_app.url + "/queue-ours", 4, method="GET"))
    for responses, status, retry_after in ((default, 503, None), (ours, 429, "5")):
        refused = [r for r in responses if r.status_code != 200]
        assert refused and len(refused) < 4, [r.status_code for r in responses]
        for r in refused:
            assert (r.status_code, r.headers.get("retry-after")) == (status, retry_after)
            assert r.text.startswith("Request dropped due to backpressure")  # Ray's text, not our envelope


def test_a_saturated_replicas_429_reaches_the_client_with_retry_after(ray_app):
    # 12 requests of 16 unique items at once: ~96 items per replica against a budget of 48.
    batches = [heldout(200 + 16 * i, 16) for i in range(12)]

    async def send() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=300) as client:
            return await asyncio.gather(*(client.post(ray_app.url + "/score", json={"items": b}) for b in batches))

    responses = asyncio.run(send())
    refused = [r for r in responses if r.status_code == 429]
    assert refused, [r.status_code for r in responses]
    assert {r.status_code for r in responses} <= {200, 429}
    for r in refused:  # the replica's own 429 (our envelope), its Retry-After from the drain rate
        assert r.json()["error"]["code"] == "rate_limited" and r.headers["retry-after"].isdigit()
    # The retrying client over a saturating load: it sees 429s with Retry-After and still gets every item.
    transport = CountingTransport()
    items = heldout(400, 192)
    results = LibraClient(ray_app.url, chunk_size=16, max_concurrency=12, transport=transport).score(items)
    assert [r.status for r in results] == ["ok"] * len(items)
    assert transport.statuses[429] >= 1 and all(ra and ra.isdigit() for _, ra in transport.retry_after)
    waits = sorted({r.headers["retry-after"] for r in refused})
    print(f"\n[ray] burst: {len(refused)}/12 requests got 429 (Retry-After {waits}); "
          f"client: {dict(transport.statuses)}, every item answered")


def test_a_replica_whose_engine_died_is_replaced_and_the_client_gets_every_result(ray_app):
    before = replicas()
    assert len(before) == 2
    victim, victim_pid = sorted(before.items())[0]
    core = engine_core(victim_pid)
    items = heldout(600, 320)
    transport = CountingTransport()
    out: dict = {}

    def score() -> None:
        out["results"] = LibraClient(ray_app.url, chunk_size=16, max_concurrency=4, transport=transport).score(items)

    worker = threading.Thread(target=score)
    worker.start()
    # Kill while the victim's engine is judging (not at a fixed time, which a fast or slow machine misses).
    def running() -> float:
        text = httpx.get(ray_app.url + "/metrics", timeout=30).text
        return metric_sum(text, "vllm:num_requests_running", {"replica": victim})

    assert wait_until(lambda: not worker.is_alive() or running() >= 1, 120, poll_s=0.2) is not None \
        and worker.is_alive(), "the victim replica never had a request running"
    killed = time.monotonic()
    core.kill()
    removed = replaced = None
    deadline = killed + 900
    while time.monotonic() < deadline and replaced is None:
        now = replicas()
        if removed is None and victim not in now:
            removed = time.monotonic() - killed
        if victim not in now and len(now) == 2 and ray_app.status("libra").status.value == "RUNNING":
            replaced = time.monotonic() - killed
        time.sleep(0.5)
    worker.join(timeout=900)
    results = out["results"]
    print(f"\n[ray] engine core of replica {victim} killed: replica stopped by Ray after {removed:.1f}s, a new one "
          f"RUNNING after {replaced:.1f}s; client saw {dict(transport.statuses)}; "
          f"{sum(r.status == 'ok' for r in results)}/{len(items)} items ok")
    assert replaced is not None, f"no replacement: {replicas()}"
    assert [r.status for r in results] == ["ok"] * len(items)
    assert transport.statuses[503] >= 1  # the kill hit requests in flight: the dead replica's 503s, retried
    assert not alive(core.pid) and not alive(victim_pid)
    assert httpx.get(ray_app.url + "/ready", timeout=30).status_code == 200
