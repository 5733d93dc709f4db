"""Helpers the tests share (fixtures live in the conftest.py files; no test module imports another)."""

from __future__ import annotations

import json
import re
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from nano import world
from service.app import build_app
from service.config import Settings
from service.judge.verifier import DEFAULT_CHECK
from service.metrics import metric_sum

HANGING_CHECK = "tests.verify_hang:check"  # a verify check that hangs on the reference "HANG"
ROOT = Path(__file__).resolve().parents[1]
# ``libra-serve serve``'s greedy verdicts on held-out items (``python -m tests.record_verdicts URL`` writes
# them), checked against the live server in make test: what the Ray replicas must match, so no plain
# server needs to start beside them.
SERVE_VERDICTS = ROOT / "tests/fixtures/nano_serve_verdicts.json"


# Engine flags for the servers that start for a few light tests (not live_server, which judges most of the
# suite's items), the Ray replicas and the throughput-harness check: vLLM's torch.compile warm-up is most of
# a CPU engine's start (ready 58-65 s eager vs 95-113 s compiled, measured twice here on a busy machine),
# while what these servers are for (forcing, priorities, admission, drain, engine death, the profiles'
# rendering, the stacks agreeing) does not depend on compiled kernels.
QUICK_START = ["--enforce-eager"]


def heldout(start: int, n: int) -> list[dict]:
    """Items of the nano judge's held-out set (unique across tests, so no server's cache answers them)."""
    lines = (ROOT / "nano/heldout.jsonl").read_text().splitlines()[start:start + n]
    return [{k: v for k, v in json.loads(line).items() if k in ("id", "question", "response")} for line in lines]


def wait_until(predicate, timeout_s: float, poll_s: float = 0.05) -> float | None:
    """Seconds until ``predicate()`` held, or None if it never did within ``timeout_s``: for ordering steps
    across threads or processes by their state, not by a fixed sleep that a slow machine outruns."""
    import time

    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        if predicate():
            return time.perf_counter() - start
        time.sleep(poll_s)
    return None


def perfect_nano_judge(prompt: str, _sample: int) -> str:
    """Reads the question and response from the rendered nano prompt and answers as the nano judge should
    (a FakeEngine reply function)."""
    q = re.search(r"Question: .*?(\d+) ([+-]) (\d+)", prompt)
    r = re.search(r"Response: (.*)<\|im_end\|>", prompt, re.S)
    if not (q and r):  # a group's shared prefix being primed: any reply will do
        return ""
    a, op, b = int(q.group(1)), q.group(2), int(q.group(3))
    answer = int(re.findall(r"\d+", r.group(1))[-1])
    return world.judge_output(world.Item(a, op, b, answer, "", ""))


def build_app_for(engine, verify_check: str = DEFAULT_CHECK, judge: str = "nano", **settings):
    """The real app on ``engine`` (a FakeEngine), with the nano profile (or ``judge``) as default."""

    @asynccontextmanager
    async def open_engine():
        yield engine

    return build_app(Settings(**settings), open_engine, judge, verify_check=verify_check)


def make_client(engine, verify_check: str = DEFAULT_CHECK, judge: str = "nano", **settings) -> TestClient:
    return TestClient(build_app_for(engine, verify_check, judge, **settings))


def scrape(server, name: str, labels: dict | None = None) -> float:
    """Sum of the samples of metric ``name`` (with matching labels) on a running server's /metrics."""
    return metric_sum(httpx.get(server.url_for("metrics")).text, name, labels)


def working(n_steps: int, seed: int = 0) -> str:
    """A long, plausible, non-repeating worked solution (``n_steps`` lines of different arithmetic):
    long enough to need truncation without looking like a repetition loop to the reward policy."""
    import random

    rng = random.Random(seed)
    lines = []
    for i in range(n_steps):
        a, b = rng.randrange(10, 10_000), rng.randrange(10, 10_000)
        lines.append(f"Step {i + 1}: {a} + {b} = {a + b}, carried over to step {i + 2}.")
    return "\n".join(lines)


class AppServer:
    """The real app served over a real socket by uvicorn in a thread (for clients that open their own
    connections, such as the trainers' requests and aiohttp code), on a FakeEngine: for paths that
    need a server state on cue (a full admission budget, draining), which the live engine cannot give."""

    def __init__(self, app):
        import threading

        import uvicorn

        from libra_eval.server_process import free_port

        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def url_for(self, *parts: str) -> str:
        return "/".join([self.url, *(p.strip("/") for p in parts)])

    def __enter__(self) -> AppServer:
        import time

        self._thread.start()
        for _ in range(200):
            if self._server.started:
                return self
            time.sleep(0.05)
        raise RuntimeError("the in-process server did not start")

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
