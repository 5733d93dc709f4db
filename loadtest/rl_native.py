"""RL-native scoring on the nano judge and the real engine: streaming latency, and priority lanes.

    python loadtest/rl_native.py stream   [--items 512] [--rounds 3]
    python loadtest/rl_native.py priority [--bulk 768] [--window 60] [--rounds 3]

stream: one server; per round, the same 512 new items once as a plain /score request and once streamed
(order alternating between rounds); prints the time to the first, the 50% and the last streamed result
against the plain request's time, and the medians over rounds.

priority: two servers, one without and one with vLLM's ``--scheduling-policy priority`` (and
``LIBRA_SMALL_REQUEST_ITEMS=1``), both up, measured in turn (order alternating between rounds): a bulk
client keeps ``--bulk`` items queued in 256-item streamed requests while single-item requests are sent
one after another for ``--window`` seconds; prints each round, then the single-item p50/p95 and the
median bulk items/s under each policy, and their ratios (of medians and per round).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from libra_eval.server_process import ServerProcess  # noqa: E402
from nano import world  # noqa: E402

ENGINE = ["--max-num-seqs", "128", "--max-model-len", "1024"]


def fresh_items(n: int, rng: random.Random) -> list[dict]:
    return [{"question": it.question, "response": it.response}
            for it in (world.make_item(rng, "eval") for _ in range(n))]


async def timed_plain(http: httpx.AsyncClient, items: list[dict]) -> float:
    t0 = time.perf_counter()
    r = await http.post("/score", json={"items": items, "cache": False})
    r.raise_for_status()
    return time.perf_counter() - t0


async def timed_stream(http: httpx.AsyncClient, items: list[dict]) -> dict[str, float]:
    t0 = time.perf_counter()
    marks = []
    async with http.stream("POST", "/score", json={"items": items, "cache": False, "stream": True}) as r:
        async for line in r.aiter_lines():
            if line.strip() and not json.loads(line).get("done"):
                marks.append(time.perf_counter() - t0)
    assert len(marks) == len(items)
    return {"first": marks[0], "half": marks[len(marks) // 2 - 1], "last": marks[-1]}


async def stream_bench(url: str, n: int, rounds: int) -> dict:
    rng = random.Random(515)
    rows = []
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        await timed_plain(http, fresh_items(64, rng))  # warm-up
        for k in range(rounds):
            plain_items, stream_items = fresh_items(n, rng), fresh_items(n, rng)
            if k % 2 == 0:
                plain = await timed_plain(http, plain_items)
                streamed = await timed_stream(http, stream_items)
            else:
                streamed = await timed_stream(http, stream_items)
                plain = await timed_plain(http, plain_items)
            rows.append({"plain_s": plain, **{f"stream_{k2}_s": v for k2, v in streamed.items()}})
            print(json.dumps(rows[-1]), flush=True)
    med = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
    return {"items": n, "rounds": rows, "median": med,
            "ratios_to_plain": {k: med[k] / med["plain_s"] for k in med if k != "plain_s"}}


async def priority_window(url: str, bulk: int, window_s: float, rng: random.Random) -> dict:
    """One measurement on one server: a bulk client keeps ``bulk`` items queued (256-item streamed
    requests, so every item's completion is timed, not every request's); after 8 s of filling, single-item
    requests go one after another for ``window_s``; bulk items/s counts the items completed in exactly that
    window. The load stays on until the last single-item request returns."""
    stop = asyncio.Event()
    done_at: list[float] = []

    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        async def bulk_stream():
            while not stop.is_set():
                body = {"items": fresh_items(256, rng), "cache": False, "stream": True}
                async with http.stream("POST", "/score", json=body) as r:
                    if r.status_code != 200:
                        await asyncio.sleep(0.5)
                        continue
                    async for line in r.aiter_lines():
                        if line.strip() and not json.loads(line).get("done"):
                            done_at.append(time.perf_counter())
                        if stop.is_set():
                            return  # closing the stream aborts the rest (abort on disconnect)

        load = [asyncio.ensure_future(bulk_stream()) for _ in range(max(1, bulk // 256))]
        await asyncio.sleep(8)  # let the queue fill
        t_start = time.perf_counter()
        t_end = t_start + window_s
        latencies = []
        while time.perf_counter() < t_end:
            t0 = time.perf_counter()
            r = await http.post("/score", json={"items": fresh_items(1, rng), "cache": False})
            r.raise_for_status()
            latencies.append(time.perf_counter() - t0)
            await asyncio.sleep(0.2)
        stop.set()
        for task in load:
            task.cancel()
        await asyncio.gather(*load, return_exceptions=True)
    await asyncio.sleep(3)  # the aborted requests leave the engine before the other server's turn
    in_window = sum(1 for t in done_at if t_start <= t < t_end)
    return {"single_s": latencies, "bulk_items_per_s": in_window / window_s}


async def priority_bench(urls: dict[str, str], bulk: int, window_s: float, rounds: int) -> dict:
    """Both servers up at once, measured in turn (order alternating between rounds), so a slow spell of
    the shared machine falls on both; medians over rounds."""
    rng = random.Random(616)
    for url in urls.values():
        async with httpx.AsyncClient(base_url=url, timeout=600) as http:
            (await http.post("/score", json={"items": fresh_items(64, rng), "cache": False})).raise_for_status()
    rows: dict[str, list[dict]] = {policy: [] for policy in urls}
    for k in range(rounds):
        order = list(urls) if k % 2 == 0 else list(reversed(urls))
        for policy in order:
            row = await priority_window(urls[policy], bulk, window_s, rng)
            rows[policy].append(row)
            print(json.dumps({"round": k, "policy": policy, "bulk_items_per_s": round(row["bulk_items_per_s"], 2),
                              "single_s": [round(x, 2) for x in row["single_s"]]}), flush=True)
    out: dict = {"bulk": bulk, "window_s": window_s, "rounds": rounds}
    for policy, policy_rows in rows.items():
        singles = sorted(x for row in policy_rows for x in row["single_s"])
        out[policy] = {
            "single_p50_s": statistics.median(singles),
            "single_p95_s": singles[max(0, int(round(0.95 * len(singles))) - 1)],
            "single_requests": len(singles),
            "bulk_items_per_s_median": statistics.median(row["bulk_items_per_s"] for row in policy_rows),
            "bulk_items_per_s_rounds": [round(row["bulk_items_per_s"], 2) for row in policy_rows],
        }
    out["p50_fcfs_over_priority"] = out["fcfs"]["single_p50_s"] / out["priority"]["single_p50_s"]
    out["bulk_priority_over_fcfs_median"] = (out["priority"]["bulk_items_per_s_median"]
                                             / out["fcfs"]["bulk_items_per_s_median"])
    pairs = zip(rows["fcfs"], rows["priority"], strict=True)
    out["bulk_priority_over_fcfs_per_round"] = [
        round(p["bulk_items_per_s"] / f["bulk_items_per_s"], 3) for f, p in pairs]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["stream", "priority"])
    parser.add_argument("--items", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bulk", type=int, default=768)
    parser.add_argument("--window", type=float, default=60.0, help="seconds measured per server and round")
    args = parser.parse_args()
    if args.what == "stream":
        with ServerProcess(ENGINE) as server:
            out = asyncio.run(stream_bench(server.url, args.items, args.rounds))
    else:
        with contextlib.ExitStack() as stack:
            urls = {"fcfs": stack.enter_context(ServerProcess([*ENGINE, "--scheduling-policy", "fcfs"])).url,
                    "priority": stack.enter_context(ServerProcess([*ENGINE, "--scheduling-policy", "priority"],
                                                                  env={"LIBRA_SMALL_REQUEST_ITEMS": "1"})).url}
            out = asyncio.run(priority_bench(urls, args.bulk, args.window, args.rounds))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
