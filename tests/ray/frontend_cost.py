"""What Ray Serve's proxy adds to the front end's CPU per item (not a test; ``pip install 'libra-serve[ray]'``):

    python tests/ray/frontend_cost.py [--size 4096] [--seconds 15]

The app of ``loadtest/frontend.py`` (the real app, an engine that answers instantly, cache off) serves 256-item
``/score`` requests from 4 connections, first under uvicorn, then as a Ray Serve replica behind Ray's HTTP proxy
(a local Ray, 2 CPUs). For each process it reports the CPU seconds spent per 1,000 items and so the items/s one
core sustains. It starts and stops its own Ray: run it when no other Ray runs here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "loadtest")]


def cpu_seconds(process) -> float:
    return sum(p.cpu_times().user + p.cpu_times().system for p in [process, *process.children(recursive=True)])


def measure(url: str, processes: dict, size: int, seconds: float) -> dict:
    from frontend import items, load

    bodies = [json.dumps({"items": items(256, size, seed), "cache": False}).encode() for seed in range(24)]
    asyncio.run(load(url, bodies[:2], 256, 3.0, 4))  # warm-up
    before = {name: cpu_seconds(p) for name, p in processes.items()}
    done, wall = asyncio.run(load(url, bodies, 256, seconds, 4))
    out: dict = {"items": done, "items_per_s": round(done / wall, 1)}
    for name, process in processes.items():
        cpu = cpu_seconds(process) - before[name]
        out[name] = {"cpu_s_per_1000_items": round(1000 * cpu / done, 3), "items_per_s_per_core": round(done / cpu)}
    return out


def main() -> None:
    import psutil
    from frontend import serve as uvicorn_serve
    from frontend import wait_healthy

    from libra_eval.server_process import free_port
    from service.config import NANO_JUDGE_PATH

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096, help="response size in bytes")
    ap.add_argument("--seconds", type=float, default=15.0)
    args = ap.parse_args()
    model, judge = str(NANO_JUDGE_PATH), "nano"

    port = free_port()
    server = get_context("spawn").Process(target=uvicorn_serve, args=(port, None, model, judge), daemon=True)
    server.start()
    wait_healthy(f"http://127.0.0.1:{port}")
    print("uvicorn:", measure(f"http://127.0.0.1:{port}", {"app": psutil.Process(server.pid)}, args.size,
                                args.seconds), flush=True)
    server.terminate()
    server.join()

    import ray
    from ray import serve

    @serve.deployment(ray_actor_options={"num_cpus": 1}, max_ongoing_requests=1000)
    @serve.ingress()
    class FrontEnd:
        def __serve_build_asgi_app__(self):
            sys.path.insert(0, str(ROOT / "loadtest"))
            from frontend import make_app

            return make_app(model, judge)

    os.environ.setdefault("RAY_worker_niceness", "0")  # as tests/ray: not starved by the machine's other jobs
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(FrontEnd.bind(), name="frontend", route_prefix="/")
        processes = {}
        for p in psutil.Process().children(recursive=True):
            title = " ".join(p.cmdline())
            if "ProxyActor" in title:
                processes["ray_proxy"] = p
            elif "ServeReplica:frontend" in title:
                processes["replica"] = p
        print("ray serve:", measure(f"http://127.0.0.1:{port}", processes, args.size, args.seconds), flush=True)
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
