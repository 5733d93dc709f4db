"""Measure the engine work that dedup, the result cache and group priming save, on the real engine.

    python loadtest/judge_savings.py            # starts libra-serve (nano judge) twice, prints figures

1. Dedup: one batch of 256 items of which 25% repeat earlier items. Reports the prompt and completion
   tokens the engine did not process (``libra_engine_tokens_saved_total``) against what it did.
2. Grouping: 16 GRPO-style groups of 16 responses to one question each (256 items). Runs the same
   batch on a server with group priming on and on one with it off, and reports vLLM's own prefix-cache
   counters (``vllm:prefix_cache_hits_total`` / ``queries``): prefill tokens served from cache.

Figures come from one run on one machine; ratios are what to compare across machines.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

import httpx

from libra_eval.server_process import ServerProcess
from nano import world
from service.metrics import metric_sum


def scrape(server, name: str, labels: dict | None = None) -> float:
    return metric_sum(httpx.get(server.url + "/metrics").text, name, labels)


def dedup_batch(n: int = 256, dup_share: float = 0.25, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    unique = [world.make_item(rng, "eval") for _ in range(round(n * (1 - dup_share)))]
    items = [{"question": it.question, "response": it.response} for it in unique]
    items += [dict(rng.choice(items)) for _ in range(n - len(items))]
    rng.shuffle(items)
    return items


def grouped_batch(groups: int = 16, size: int = 16, seed: int = 2) -> list[dict]:
    """``groups`` questions with ``size`` responses each, half of them wrong, as a GRPO step sends."""
    rng = random.Random(seed)
    items = []
    for _ in range(groups):
        base = world.make_item(rng, "eval")
        for _ in range(size):
            answer = base.truth if rng.random() < 0.5 else world.wrong_answer(rng, base.a, base.op, base.b, base.truth)
            items.append({"question": base.question, "response": world.response(rng, base.a, base.op, base.b, answer)})
    return items


def post(url: str, items: list[dict], **options) -> tuple[list[dict], float]:
    t0 = time.perf_counter()
    resp = httpx.post(url + "/score", json={"items": items, **options}, timeout=900)
    resp.raise_for_status()
    return resp.json()["results"], time.perf_counter() - t0


def measure_dedup(server) -> dict:
    items = dedup_batch()
    spent = {k: scrape(server, "libra_engine_tokens_total", {"kind": k}) for k in ("prompt", "completion")}
    saved = {k: scrape(server, "libra_engine_tokens_saved_total", {"kind": k}) for k in ("prompt", "completion")}
    results, seconds = post(server.url, items, cache=False)
    spent = {k: scrape(server, "libra_engine_tokens_total", {"kind": k}) - v for k, v in spent.items()}
    saved = {k: scrape(server, "libra_engine_tokens_saved_total", {"kind": k}) - v for k, v in saved.items()}
    total = sum(spent.values()) + sum(saved.values())
    return {"items": len(items), "unique": len({(i["question"], i["response"]) for i in items}),
            "cached_results": sum(r["cached"] for r in results), "engine_tokens_spent": spent,
            "engine_tokens_saved": saved, "saved_share_of_tokens": round(sum(saved.values()) / total, 3),
            "seconds": round(seconds, 2)}


def measure_grouping(server) -> dict:
    items = grouped_batch()
    q0, h0 = scrape(server, "vllm:prefix_cache_queries_total"), scrape(server, "vllm:prefix_cache_hits_total")
    _, seconds = post(server.url, items, cache=False)
    q = scrape(server, "vllm:prefix_cache_queries_total") - q0
    h = scrape(server, "vllm:prefix_cache_hits_total") - h0
    return {"items": len(items), "prefill_tokens_queried": int(q), "prefill_tokens_from_cache": int(h),
            "hit_rate": round(h / q, 3) if q else 0.0, "seconds": round(seconds, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine-args", default="", help="extra vLLM flags for both servers, e.g. '--block-size 32'")
    args = ap.parse_args()
    extra = args.engine_args.split()
    report: dict = {}
    with ServerProcess(extra, log_path=Path("/tmp/libra-savings-on.log")) as server:
        report["dedup_25pct_duplicates"] = measure_dedup(server)
        report["grouping_16x16_priming_on"] = measure_grouping(server)
    os.environ["LIBRA_GROUP_PRIMING"] = "false"
    try:
        with ServerProcess(extra, log_path=Path("/tmp/libra-savings-off.log")) as server:
            report["grouping_16x16_priming_off"] = measure_grouping(server)
    finally:
        del os.environ["LIBRA_GROUP_PRIMING"]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
