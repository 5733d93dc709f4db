"""``libra-serve ray`` as a user runs it: it starts its own local Ray, serves until SIGTERM and leaves nothing
running; asked for GPUs the cluster lacks, it stops with one line. (These run before the session's cluster
starts, so there is one Ray at a time.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from tests.helpers import QUICK_START, wait_until

ROOT = Path(__file__).resolve().parents[2]
ITEMS = [{"id": "a", "question": "What is 347 + 58?", "response": "347 + 58 = 405. The answer is 405."},
         {"id": "b", "question": "What is 347 + 58?", "response": "347 + 58 = 415. The answer is 415."}]


def libra_serve_ray(*argv: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    return subprocess.Popen([sys.executable, "-m", "service.cli", "ray", *argv], stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def test_libra_serve_ray_serves_then_stops_on_sigterm(tmp_path):
    from libra_eval.server_process import free_port

    port = free_port()
    log = tmp_path / "libra-serve-ray.log"
    start = time.monotonic()
    proc = libra_serve_ray("--port", str(port), "--num-replicas", "1", "--max-num-seqs", "8",
                           "--max-model-len", "1024", *QUICK_START, log=log)
    family: set[int] = set()
    try:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            family |= {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
            # Ready once `serve.run` returned (the line) and the replica answers /ready through the proxy.
            if "libra-serve ray: judge 'nano' on http://127.0.0.1:" in log.read_text(errors="replace"):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
            time.sleep(1)
        else:
            raise AssertionError("libra-serve ray did not become ready: " + log.read_text()[-3000:])
        ready_s = time.monotonic() - start
        family |= {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
        body = httpx.post(f"http://127.0.0.1:{port}/score", json={"items": ITEMS}, timeout=120).json()
        assert [r["verdict"] for r in body["results"]] == ["correct", "incorrect"]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=180)
    print(f"\n[ray] libra-serve ray: /ready {ready_s:.0f}s after start; exit {code} on SIGTERM")
    assert code == 0, log.read_text()[-3000:]
    # Ray's shutdown signals its processes and returns: give them a moment to go, then none may be left.
    wait_until(lambda: not living(family), 60, poll_s=0.5)
    left = living(family)
    assert left == [], [(p, psutil.Process(p).cmdline()[:3]) for p in left]


def living(pids: set[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def test_no_gpus_for_the_placement_stops_with_one_line(tmp_path):
    log = tmp_path / "no-gpu.log"
    proc = libra_serve_ray("--replica-gpus", "1", "--num-replicas", "2", log=log)
    code = proc.wait(timeout=300)
    last = log.read_text().strip().splitlines()[-1]
    assert code == 1
    assert last.startswith("libra-serve ray: 2 replica(s) x 1 GPU need 2 GPUs; the Ray cluster has 0"), last
