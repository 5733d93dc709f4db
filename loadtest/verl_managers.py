"""verl's reward managers side by side on one server: the naive manager (one blocking compute_score per
sample), the reward loop (one awaited compute_score_async per sample, all concurrent) and the batch
manager (one compute_score_batch), as verl calls them (loadtest/verl_calls.py).

    python loadtest/verl_managers.py --url http://127.0.0.1:8000 [--items 256] [--rounds 3]

Interleaved rounds; each round's items differ from every other's (the server's cache never answers).
Prints each manager's times, medians and the ratios to the naive manager.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loadtest.verl_calls import batch_manager, naive_manager, reward_loop  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--items", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ["LIBRA_URL"] = args.url
    from libra_client import verl

    rows = [json.loads(line) for line in open(ROOT / "nano" / "heldout.jsonl", encoding="utf-8")][: args.items]
    runs = {"naive": lambda r: naive_manager(verl.compute_score, r),
            "reward_loop": lambda r: asyncio.run(reward_loop(verl.compute_score_async, r)),
            "batch": lambda r: batch_manager(verl.compute_score_batch, r)}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for rnd in range(args.rounds):
        for k, (name, run) in enumerate(runs.items()):
            pad = " " * (rnd * len(runs) + k + 1)  # a distinct question text per run: no cache hits
            batch = [("nano", r["response"], None, {"question": r["question"] + pad}) for r in rows]
            t0 = time.perf_counter()
            run(batch)
            times[name].append(time.perf_counter() - t0)
    medians = {name: statistics.median(v) for name, v in times.items()}
    print(json.dumps({"items": len(rows), "rounds": args.rounds, "seconds": times, "median_s": medians,
                      "naive_over": {name: medians["naive"] / m for name, m in medians.items()}}, indent=2))


if __name__ == "__main__":
    main()
