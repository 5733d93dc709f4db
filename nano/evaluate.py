"""Accuracy of a judge on the nano held-out set, scored through the HTTP service.

    python -m nano.evaluate                 # starts libra-serve with the nano judge, then scores
    python -m nano.evaluate --url URL       # scores against a running service

Greedy decoding (the nano profile's default). Prints accuracy, the status mix and items/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from pathlib import Path

import httpx
from tqdm import tqdm

from libra_eval.server_process import ServerProcess
from nano.heldout import HELDOUT_PATH, load


async def score_all(url: str, rows: list[dict], batch: int, concurrency: int) -> list[dict]:
    results: list[dict | None] = [None] * len(rows)
    sem = asyncio.Semaphore(concurrency)
    bar = tqdm(total=len(rows), desc="scoring", unit="item")
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:

        async def one(start: int) -> None:
            chunk = rows[start : start + batch]
            async with sem:
                resp = await client.post("/score", json={"items": [
                    {"id": r["id"], "question": r["question"], "response": r["response"]} for r in chunk]})
            resp.raise_for_status()
            for offset, res in enumerate(resp.json()["results"]):
                results[start + offset] = res
            bar.update(len(chunk))

        await asyncio.gather(*(one(s) for s in range(0, len(rows), batch)))
    bar.close()
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


def report(rows: list[dict], results: list[dict], seconds: float) -> dict:
    statuses = Counter(r["status"] for r in results)
    correct = sum(
        1 for row, res in zip(rows, results, strict=True)
        if res["status"] == "ok" and res["verdict"] == ("correct" if row["label"] else "incorrect")
    )
    return {"items": len(rows), "accuracy": correct / len(rows), "statuses": dict(statuses),
            "seconds": round(seconds, 1), "items_per_s": round(len(rows) / seconds, 1)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running service; default: start one with the nano judge")
    ap.add_argument("--data", type=Path, default=HELDOUT_PATH)
    ap.add_argument("--limit", type=int, default=0, help="score only the first N items")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args(argv)
    rows = load(args.data)
    if args.limit:
        rows = rows[: args.limit]

    def run(url: str) -> dict:
        t0 = time.perf_counter()
        results = asyncio.run(score_all(url, rows, args.batch, args.concurrency))
        return report(rows, results, time.perf_counter() - t0)

    if args.url:
        summary = run(args.url)
    else:
        with ServerProcess(log_path=Path("/tmp/libra-nano-eval.log")) as server:
            summary = run(server.url)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
