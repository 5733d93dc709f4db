"""A scalar reward model through Libra Serve beside the do-it-yourself anchor, same model, same items, one run.

    python loadtest/scalar_bench.py [--items 512] [--rounds 3] [--model PATH] [--engine-args "..."] [--out FILE]

- ``service``: ``libra-serve serve --judge skywork-reward-v2`` (vLLM's pooling runner, which the service
  sets), the workload sent as batched ``/score`` requests (128 items each, all in flight at once).
- ``vllm-classify``: what verl's reward loop does for a discriminative reward model (verl-project/verl,
  verl/experimental/reward_loop/reward_loop.py, ``compute_score_disrm``, commit 1dda039b): ``vllm serve
  --runner pooling`` with the same engine flags, and per item an async POST to ``/classify`` with
  ``{"model", "input": <the chat-templated conversation, leading BOS stripped>, "use_activation": false}``,
  the score read from ``data[-1]["probs"][-1]``; 64 requests in flight (verl runs many reward workers).
- ``vllm-classify-batched``: the same server with a hand-written client that sends 128 texts per
  ``/classify`` request (its ``input`` takes a list), as the service's own clients batch: what batching
  alone buys.

The model is a seeded random ``Qwen3ForSequenceClassification`` on Qwen's vocabulary (``nano/random_model.py
--head scalar``; ``--preset``), unless ``--model`` names one. Workloads: ``unique`` (no two items alike) and
``rl`` (groups of 16 responses per question, 25% duplicates), responses padded to a realistic, long-tailed
length. Both stacks run in interleaved rounds; ratios are taken within a round, reported as the median over
rounds with min-max. The stacks' scores of every item are compared too (max absolute difference).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shlex
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "loadtest"))

from throughput import VLLM_OPENAI_SERVER, brief, machine, median_rows, over_rounds, table, timed  # noqa: E402
from workloads import rl_items, unique_items  # noqa: E402

from libra_eval.server_process import ServerProcess  # noqa: E402

JUDGE = "skywork-reward-v2"
CHUNK = 128
CLIENT_CONCURRENCY = 64


async def run_service(url: str, workloads: dict) -> list[dict]:
    rows = []
    async with httpx.AsyncClient(base_url=url, timeout=900) as client:

        async def chunk(start: int, part: list[dict]) -> list[tuple[int, int, float | None]]:
            # The repetition check off: the padding repeats a few sentences, and the anchor scores every item.
            resp = await client.post("/score", json={"items": part, "policy": {"max_repetition": 0}})
            resp.raise_for_status()
            results = resp.json()["results"]
            if any(r["status"] != "ok" for r in results):
                raise RuntimeError(f"items not ok: {[r for r in results if r['status'] != 'ok'][:2]}")
            return [(start + k, 0, r["score"]) for k, r in enumerate(results)]

        for name, items in workloads.items():
            row = await timed("service", name, len(items),
                              [chunk(s, items[s:s + CHUNK]) for s in range(0, len(items), CHUNK)])
            if name != "warmup":
                rows.append(row)
    return rows


async def run_vllm_classify(url: str, model_name: str, tokenizer, workloads: dict,
                            concurrency: int = CLIENT_CONCURRENCY, batched: bool = True) -> list[dict]:
    sem = asyncio.Semaphore(concurrency)
    rows = []
    async with httpx.AsyncClient(base_url=url, timeout=900, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def one(i: int, item: dict) -> list[tuple[int, int, float | None]]:
            text = templated(tokenizer, item)
            async with sem:
                resp = await client.post("/classify", json={"model": model_name, "input": text,
                                                            "use_activation": False})
            resp.raise_for_status()
            return [(i, 0, resp.json()["data"][-1]["probs"][-1])]

        async def batch(start: int, part: list[dict]) -> list[tuple[int, int, float | None]]:
            texts = [templated(tokenizer, it) for it in part]
            async with sem:
                resp = await client.post("/classify", json={"model": model_name, "input": texts,
                                                            "use_activation": False})
            resp.raise_for_status()
            data = sorted(resp.json()["data"], key=lambda d: d["index"])
            return [(start + k, 0, d["probs"][-1]) for k, d in enumerate(data)]

        for name, items in workloads.items():
            row = await timed("vllm-classify", name, len(items), [one(i, it) for i, it in enumerate(items)])
            if name != "warmup":
                rows.append(row)
            if batched:  # the same server, a hand-written client that batches as the service's clients do
                row = await timed("vllm-classify-batched", name, len(items),
                                  [batch(s, items[s:s + CHUNK]) for s in range(0, len(items), CHUNK)])
                if name != "warmup":
                    rows.append(row)
    return rows


def templated(tokenizer, item: dict) -> str:
    """verl's disrm text: the conversation through the chat template, no generation prompt, BOS stripped."""
    chat = [{"role": "user", "content": item["question"]}, {"role": "assistant", "content": item["response"]}]
    text = tokenizer.apply_chat_template(chat, add_generation_prompt=False, tokenize=False)
    if tokenizer.bos_token and text.startswith(tokenizer.bos_token):
        text = text[len(tokenizer.bos_token):]
    return text


def ratios(rows: list[dict]) -> dict:
    by = {(r["system"], r["workload"]): r for r in rows}
    return {f"service/{other} {w}": round(by[("service", w)]["items_per_s"] / by[(other, w)]["items_per_s"], 3)
            for w in sorted({r["workload"] for r in rows}) for other in ("vllm-classify", "vllm-classify-batched")
            if ("service", w) in by and (other, w) in by}


def score_gap(rows: list[dict]) -> dict:
    """Per workload and anchor, the largest absolute difference between the service's score of an item and
    the anchor's."""
    by = {(r["system"], r["workload"]): r["verdicts"] for r in rows}
    return {f"{other} {w}": max(abs(a - b) for a, b in zip(scores, by[(other, w)], strict=True))
            for (system, w), scores in by.items() if system == "service"
            for other in ("vllm-classify", "vllm-classify-batched") if (other, w) in by}


def build_model(preset: str, out: Path) -> Path:
    """The seeded random reward model, its score head scaled to a real model's range (the live test's)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from nano.random_model import build

    build(preset, out, max_position=4096, head="scalar")
    model = AutoModelForSequenceClassification.from_pretrained(out, dtype=torch.float32)
    with torch.no_grad():
        model.score.weight.mul_(200.0)
    model.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=512, help="items per workload")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--model", default=None, help="a reward model (default: a random one built here)")
    ap.add_argument("--preset", default="tiny", help="nano/random_model.py preset of the random model")
    ap.add_argument("--engine-args", default="--max-model-len 2048 --max-num-seqs 128 --dtype float32",
                    help="vLLM flags for both stacks")
    ap.add_argument("--client-concurrency", type=int, default=CLIENT_CONCURRENCY)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--logs", type=Path, default=Path("/tmp"))
    args = ap.parse_args(argv)

    from transformers import AutoTokenizer

    from service.engine.vllm_engine import CPU_KVCACHE_GIB_DEFAULT, is_cpu_platform

    if is_cpu_platform():
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", CPU_KVCACHE_GIB_DEFAULT)
    model = args.model or str(build_model(args.preset, Path(tempfile.mkdtemp(prefix="scalar-bench-"))))
    tokenizer = AutoTokenizer.from_pretrained(model)
    flags = ["--model", model, "--served-model-name", "rm", *shlex.split(args.engine_args)]
    rng = random.Random(20261207)
    # A full-size warm-up for every stack (other items, so no cache answers the measured ones): vLLM compiles for
    # the batch shapes it meets, and a first batch of 256 items ran 1.9x slower than the next ones here.
    workloads = {"warmup": unique_items(rng, args.items, pad=True), "unique": unique_items(rng, args.items, pad=True),
                 "rl": rl_items(rng, args.items, group_size=16, dup_share=0.25, pad=True)}
    rows: list[dict] = []
    per_round: list[dict] = []
    for round_no in range(args.rounds):
        round_rows: list[dict] = []
        with ServerProcess([*flags, "--judge", JUDGE], log_path=args.logs / "scalar-bench-service.log",
                           env={"LIBRA_ADMISSION_BUDGET": str(4 * args.items)}) as server:
            round_rows += asyncio.run(run_service(server.url, workloads))
        print(f"round {round_no + 1} service done: {brief(round_rows[-1])}", flush=True)
        with ServerProcess([*flags, "--runner", "pooling"], log_path=args.logs / "scalar-bench-vllm.log",
                           program=VLLM_OPENAI_SERVER) as server:
            round_rows += asyncio.run(run_vllm_classify(server.url, "rm", tokenizer, workloads,
                                                        args.client_concurrency))
        print(f"round {round_no + 1} vllm-classify done: {brief(round_rows[-2])} {brief(round_rows[-1])}", flush=True)
        for r in round_rows:
            r["round"] = round_no + 1
        per_round.append(ratios(round_rows))
        rows += round_rows
    rat = over_rounds(per_round)
    gap = score_gap([r for r in rows if r["round"] == 1])
    for r in rows:
        r.pop("verdicts")
    result = {"machine": machine(), "model": args.model or f"random Qwen3ForSequenceClassification ({args.preset})",
              "judge": JUDGE, "items_per_workload": args.items, "rounds": args.rounds, "rows": rows,
              "median_rows": median_rows(rows), "ratios": rat, "max_score_gap": gap,
              "command": "python loadtest/scalar_bench.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["machine"]))
    print(table(result["median_rows"], rat))
    print(f"largest score difference between the stacks (round 1): {gap}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
