"""Rubric judging strategies side by side on one server, in interleaved rounds.

    python loadtest/rubric_bench.py [--items 256] [--criteria 8] [--rounds 3] [--out FILE]

One ``libra-serve serve`` (the Qwen-vocabulary world: a seeded random 2-layer Qwen3 on Qwen's real
vocabulary, ``nano/random_model.py``; or ``--model``), every rubric item judged three ways:

- ``per_criterion``: ``rubric-criterion``, one judgment per criterion, the question and response first and
  the criterion last, so a response's criteria share their prompt prefix in vLLM's cache;
- ``criterion_first``: the same judge with the criterion *before* the question and response (a profile
  written here): separate prompts, what judging the criteria without a shared prefix costs;
- ``holistic``: ``rubric-holistic``, the whole rubric in one call, one rating.

Each judgment's thinking is forced at ``--budget`` tokens (a random model never ends on its own), so output
lengths are fixed and the comparison is of prompts and their cache. Reports criteria/s (items x criteria /
wall), prompt and generated tokens per criterion, and vLLM's prefix-cache hit rate over the run (its
``vllm:prefix_cache_hits`` / ``queries`` counters), the median round of each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "loadtest"))

from throughput import machine, median  # noqa: E402
from workloads import unique_items  # noqa: E402

from libra_eval.server_process import ServerProcess  # noqa: E402
from service.judge.profiles import BUILTIN_DIR  # noqa: E402
from service.metrics import metric_sum  # noqa: E402

CHUNK = 32  # items per request (x criteria sub-items)
CRITERIA = [
    ("answer", "The response states a final answer.", 5, "positive", True),
    ("correct", "The final answer is correct.", 5, "positive", False),
    ("steps", "The response shows each step of the calculation.", 3, "positive", False),
    ("check", "The response checks its result.", 2, "positive", False),
    ("concise", "The response is under 150 words.", 1, "positive", False),
    ("units", "The response names the quantity its answer counts.", 1, "positive", False),
    ("guess", "The response says it is guessing.", 2, "negative", False),
    ("offtopic", "The response discusses something other than the question.", 2, "negative", False),
]
STRATEGIES = ("per_criterion", "criterion_first", "holistic")


def criterion_first_profile(out: Path) -> Path:
    """rubric-criterion with the criterion moved before the question and the response."""
    text = (BUILTIN_DIR / "rubric-criterion.toml").read_text()
    body = "[Question]\n{question}\n\n[Response]\n{response}\n\n[Criterion]\n{criterion}'''"
    assert body in text
    text = text.replace(body, "[Criterion]\n{criterion}\n\n[Question]\n{question}\n\n[Response]\n{response}'''")
    text = text.replace('holistic = "rubric-holistic"', "")
    out.mkdir(parents=True, exist_ok=True)
    (out / "rubric-criterion-first.toml").write_text(text)
    return out


async def run(url: str, strategy: str, items: list[dict], rubric: list[dict], budget: int) -> dict:
    judge = {"per_criterion": "rubric-criterion", "criterion_first": "rubric-criterion-first",
             "holistic": "rubric-holistic"}[strategy]
    async with httpx.AsyncClient(base_url=url, timeout=1800) as client:
        before = (await client.get("/metrics")).text
        t0 = asyncio.get_running_loop().time()

        async def chunk(part: list[dict]) -> list[dict]:
            r = await client.post("/score", json={"judge": judge, "items": part, "rubric": rubric, "cache": False,
                                                  "max_thinking_tokens": budget})
            r.raise_for_status()
            return r.json()["results"]

        results = [r for part in await asyncio.gather(*(chunk(items[s:s + CHUNK])
                                                          for s in range(0, len(items), CHUNK))) for r in part]
        wall = asyncio.get_running_loop().time() - t0
        after = (await client.get("/metrics")).text
    hits = metric_sum(after, "vllm:prefix_cache_hits_total") - metric_sum(before, "vllm:prefix_cache_hits_total")
    queries = (metric_sum(after, "vllm:prefix_cache_queries_total")
               - metric_sum(before, "vllm:prefix_cache_queries_total"))
    n = len(items) * len(rubric)
    statuses: dict[str, int] = {}
    for r in results:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    return {"strategy": strategy, "items": len(items), "criteria": n, "wall_s": round(wall, 2),
            "criteria_per_s": round(n / wall, 1),
            "prompt_tokens_per_criterion": round(sum(r["usage"]["prompt_tokens"] for r in results) / n, 1),
            "completion_tokens_per_criterion": round(sum(r["usage"]["completion_tokens"] for r in results) / n, 1),
            "prefix_cache_hit_rate": round(hits / queries, 4) if queries else None, "statuses": statuses}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=256)
    ap.add_argument("--criteria", type=int, default=8, choices=range(1, len(CRITERIA) + 1))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--budget", type=int, default=16, help="thinking tokens per judgment before it is forced")
    ap.add_argument("--model", default=None, help="default: the Qwen-vocabulary world's random Qwen3, built here")
    ap.add_argument("--engine-args", default="--max-model-len 4096 --max-num-seqs 256 --dtype float32")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--logs", type=Path, default=Path("/tmp"))
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="rubric-bench-"))
    model = args.model
    if model is None:
        from nano.random_model import build

        model = str(build("tiny", tmp / "qwen-world"))
    judges = criterion_first_profile(tmp / "judges")
    rubric = [{"id": i, "text": t, "weight": w, "polarity": p, "veto": v} for i, t, w, p, v in CRITERIA[:args.criteria]]
    # Fresh items for every run: vLLM's prefix cache outlives a run, and a run on items judged before would
    # read the earlier run's prompts from it.
    rng = random.Random(20261208)
    fresh = unique_items(rng, args.items * (1 + args.rounds) * len(STRATEGIES), pad=True)
    batches = iter(fresh[k:k + args.items] for k in range(0, len(fresh), args.items))
    flags = ["--model", model, "--judge", "rubric-criterion", "--judges-dir", str(judges), *args.engine_args.split()]
    rows: list[dict] = []
    with ServerProcess(flags, log_path=args.logs / "rubric-bench.log",
                       env={"LIBRA_ADMISSION_BUDGET": str(4 * args.items * args.criteria)}) as server:
        for strategy in STRATEGIES:  # warm-up: every strategy once, on items of its own
            asyncio.run(run(server.url, strategy, next(batches)[:32], rubric, args.budget))
        for round_no in range(args.rounds):
            for strategy in STRATEGIES:
                row = asyncio.run(run(server.url, strategy, next(batches), rubric, args.budget))
                row["round"] = round_no + 1
                rows.append(row)
                print(json.dumps(row), flush=True)
    medians = {}
    for strategy in STRATEGIES:
        mine = sorted((r for r in rows if r["strategy"] == strategy), key=lambda r: r["criteria_per_s"])
        medians[strategy] = mine[len(mine) // 2]
    per_round = [{s: r["criteria_per_s"] for r in rows if r["round"] == k for s in [r["strategy"]]}
                 for k in range(1, args.rounds + 1)]
    ratios = {f"per_criterion/{other}": round(median([p["per_criterion"] / p[other] for p in per_round]), 3)
              for other in ("criterion_first", "holistic")}
    result = {"machine": machine(), "model": args.model or "random Qwen3 (tiny), Qwen's vocabulary",
              "items": args.items, "criteria_per_item": args.criteria, "budget": args.budget, "rounds": args.rounds,
              "rows": rows, "medians": medians, "ratios_criteria_per_s": ratios,
              "command": "python loadtest/rubric_bench.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("| strategy | criteria/s | prompt tokens / criterion | generated / criterion | prefix-cache hit rate |")
    print("|---|---|---|---|---|")
    for s, r in medians.items():
        print(f"| {s} | {r['criteria_per_s']} | {r['prompt_tokens_per_criterion']} | "
              f"{r['completion_tokens_per_criterion']} | {r['prefix_cache_hit_rate']} |")
    print(json.dumps(ratios))
    return 0


if __name__ == "__main__":
    sys.exit(main())
