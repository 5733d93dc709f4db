"""RL-native scoring on the nano judge and the real engine: streaming latency, and priority lanes.

    python loadtest/rl_native.py stream   [--items 512] [--rounds 3]
    python loadtest/rl_native.py priority [--bulk 3000] [--probes 30]

stream: one server; per round, the same 512 new items once as a plain /score request and once streamed
(order alternating between rounds); prints the time to the first, the 50% and the last streamed result
against the plain request's time, and the medians over rounds.

priority: the same load on a server started without and with vLLM's ``--scheduling-policy priority``
(and ``LIBRA_SMALL_REQUEST_ITEMS=1``): a bulk client keeps ``--bulk`` items queued in 256-item requests
while single-item requests are sent one after another; prints the single-item p50/p95 and the bulk
items/s under each policy, and their ratios.
"""

from __future__ import annotations

import argparse
import asyncio
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


async def priority_load(url: str, bulk: int, probes: int) -> dict:
    rng = random.Random(616)
    stop = asyncio.Event()
    bulk_done = 0

    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        async def bulk_client():
            nonlocal bulk_done
            in_flight = bulk // 256

            async def one():
                nonlocal bulk_done
                while not stop.is_set():
                    r = await http.post("/score", json={"items": fresh_items(256, rng), "cache": False})
                    if r.status_code == 200:
                        bulk_done += 256
                    else:
                        await asyncio.sleep(0.5)

            await asyncio.gather(*(one() for _ in range(in_flight)))

        load = asyncio.ensure_future(bulk_client())
        await asyncio.sleep(8)  # let the queue fill
        start_done, t_start = bulk_done, time.perf_counter()
        latencies = []
        for _ in range(probes):
            t0 = time.perf_counter()
            r = await http.post("/score", json={"items": fresh_items(1, rng), "cache": False})
            r.raise_for_status()
            latencies.append(time.perf_counter() - t0)
            await asyncio.sleep(0.2)
        elapsed = time.perf_counter() - t_start
        throughput = (bulk_done - start_done) / elapsed
        stop.set()
        await load
    latencies.sort()
    return {"single_p50_s": statistics.median(latencies),
            "single_p95_s": latencies[max(0, int(round(0.95 * len(latencies))) - 1)],
            "bulk_items_per_s": throughput, "probes": probes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["stream", "priority"])
    parser.add_argument("--items", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bulk", type=int, default=3072)
    parser.add_argument("--probes", type=int, default=30)
    args = parser.parse_args()
    if args.what == "stream":
        with ServerProcess(ENGINE) as server:
            out = asyncio.run(stream_bench(server.url, args.items, args.rounds))
    else:
        out = {}
        for policy in ("fcfs", "priority"):
            env = {"LIBRA_SMALL_REQUEST_ITEMS": "1"} if policy == "priority" else {}
            with ServerProcess([*ENGINE, "--scheduling-policy", policy], env=env) as server:
                out[policy] = asyncio.run(priority_load(server.url, args.bulk, args.probes))
                print(policy, json.dumps(out[policy]), flush=True)
        out["p50_fcfs_over_priority"] = out["fcfs"]["single_p50_s"] / out["priority"]["single_p50_s"]
        out["bulk_priority_over_fcfs"] = out["priority"]["bulk_items_per_s"] / out["fcfs"]["bulk_items_per_s"]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
