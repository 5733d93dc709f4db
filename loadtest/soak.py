"""Soak and overload: memory over a long saturating run, and behaviour at 4x capacity.

    python loadtest/soak.py [--minutes 10] [--overload-minutes 2] [--out DIR]

Starts ``libra-serve`` (nano judge) with an admission budget of ``--budget`` items, then:

1. Soak: ``--clients`` closed-loop clients keep sending batches of ``--batch`` unique items (cache
   off) for ``--minutes``: enough to keep the engine saturated without passing the budget. Every 10 s
   it records the resident memory of the front-end process and, separately, of the engine processes
   (its children). Reports RSS growth after warm-up (the first ``--warmup-minutes``), and checks that
   every accepted request came back with one result per item.
2. Overload: 4x as many clients as fit the budget for ``--overload-minutes``. Beyond capacity the
   service must answer 429 (never 5xx) and its memory must stay bounded.

Writes ``soak.json`` and ``soak_rss.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "loadtest"))

from workloads import unique_items  # noqa: E402

from libra_eval.server_process import ServerProcess  # noqa: E402


def rss_mb(pid: int) -> tuple[float, float]:
    proc = psutil.Process(pid)
    front = proc.memory_info().rss / 2**20
    engine = 0.0
    for child in proc.children(recursive=True):
        try:
            engine += child.memory_info().rss / 2**20
        except psutil.Error:
            pass
    return front, engine


async def phase(url: str, clients: int, batch: int, seconds: float, pid: int, samples: list, label: str,
                t_start: float) -> dict:
    codes: Counter = Counter()
    items_done = 0
    incomplete = 0
    stop = time.monotonic() + seconds

    async def client(k: int) -> None:
        nonlocal items_done, incomplete
        rng = random.Random(k * 7919 + int(time.time()))
        async with httpx.AsyncClient(base_url=url, timeout=600) as http:
            while time.monotonic() < stop:
                items = unique_items(rng, batch)
                try:
                    resp = await http.post("/score", json={"items": items, "cache": False})
                except httpx.HTTPError as exc:
                    codes[type(exc).__name__] += 1
                    continue
                codes[resp.status_code] += 1
                if resp.status_code == 200:
                    results = resp.json()["results"]
                    items_done += len(results)
                    incomplete += len(results) != len(items)
                elif resp.status_code == 429:
                    await asyncio.sleep(float(resp.headers.get("retry-after", "1")) * rng.random())

    async def sampler() -> None:
        while time.monotonic() < stop:
            front, engine = rss_mb(pid)
            samples.append({"t": round(time.monotonic() - t_start, 1), "phase": label, "front_mb": round(front, 1),
                            "engine_mb": round(engine, 1)})
            await asyncio.sleep(10)

    t0 = time.monotonic()
    await asyncio.gather(sampler(), *(client(k) for k in range(clients)))
    wall = time.monotonic() - t0
    return {"clients": clients, "batch": batch, "seconds": round(wall, 1),
            "codes": {str(k): v for k, v in codes.items()}, "items_scored": items_done,
            "items_per_s": round(items_done / wall, 2), "incomplete_responses": incomplete}


def chart(samples: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    t = [s["t"] / 60 for s in samples]
    ax.plot(t, [s["front_mb"] for s in samples], label="front end (libra-serve)")
    ax.plot(t, [s["engine_mb"] for s in samples], label="engine (vLLM core processes)")
    over = [s["t"] / 60 for s in samples if s["phase"] == "overload"]
    if over:
        ax.axvspan(min(over), max(over), color="#c44e52", alpha=0.1, label="overload (4x)")
    ax.set_xlabel("minutes")
    ax.set_ylabel("RSS (MiB)")
    ax.set_title("Resident memory under a saturating soak, then 4x overload")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "soak_rss.png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--warmup-minutes", type=float, default=2)
    ap.add_argument("--overload-minutes", type=float, default=2)
    ap.add_argument("--budget", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--out", type=Path, default=Path("reports/soak"))
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    fit = max(1, args.budget // args.batch)
    samples: list[dict] = []
    with ServerProcess(["--max-num-seqs", "128"], log_path=args.out / "serve.log",
                       env={"LIBRA_ADMISSION_BUDGET": str(args.budget)}) as server:
        t_start = time.monotonic()
        soak = asyncio.run(phase(server.url, fit, args.batch, args.minutes * 60, server.proc.pid, samples, "soak",
                                 t_start))
        overload = asyncio.run(phase(server.url, 4 * fit, args.batch, args.overload_minutes * 60, server.proc.pid,
                                     samples, "overload", t_start))
    soak_samples = [s for s in samples if s["phase"] == "soak"]
    after = [s for s in soak_samples if s["t"] >= args.warmup_minutes * 60] or soak_samples
    growth = {k: round(100 * (after[-1][k] - after[0][k]) / after[0][k], 2) for k in ("front_mb", "engine_mb")}
    # The engine's RSS climbs while its KV-cache pages are first written; the second half shows the trend.
    half = [s for s in soak_samples if s["t"] >= soak_samples[-1]["t"] / 2]
    growth_half = {k: round(100 * (half[-1][k] - half[0][k]) / half[0][k], 2) for k in ("front_mb", "engine_mb")}
    peak_soak = max(s["front_mb"] for s in soak_samples)
    peak_over = max((s["front_mb"] for s in samples if s["phase"] == "overload"), default=peak_soak)
    result = {"budget": args.budget, "soak": soak, "overload": overload,
              "rss_growth_after_warmup_pct": growth, "rss_growth_second_half_pct": growth_half,
              "front_rss_after_warmup_mb": [after[0]["front_mb"], after[-1]["front_mb"]],
              "engine_rss_after_warmup_mb": [after[0]["engine_mb"], after[-1]["engine_mb"]],
              "front_rss_peak_soak_mb": peak_soak, "front_rss_peak_overload_mb": peak_over,
              "five_xx": sum(v for k, v in {**soak["codes"], **overload["codes"]}.items() if k.startswith("5")),
              "samples": samples}
    (args.out / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    chart(samples, args.out)
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
