"""Rule-based verification with math-verify, in worker processes that can be killed.

math-verify's own timeouts use ``signal.alarm``, which only works on a process's main thread and
cannot interrupt C code: called from a server's threads it either raises or hangs. So each check runs
in a worker process (on its main thread, where math-verify's timeouts work), and the service keeps a
hard per-item deadline on top: a worker that overruns it is killed and replaced, its item gets
``timeout``, and the items queued behind it go to a fresh worker. The queue is bounded.

Items are micro-batched to a worker, which reports each result as it finishes, so a hang is charged
to exactly the item that caused it.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import multiprocessing
import queue
import threading
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

DEFAULT_CHECK = "service.judge.verifier:check_answer"


@dataclass(frozen=True)
class VerifyOutcome:
    status: str  # correct | incorrect | inconclusive | timeout | error
    message: str | None = None

    @property
    def conclusive(self) -> bool:
        return self.status in ("correct", "incorrect")


def _gold_text(reference: str) -> str:
    # A bare reference ("1/2", "\frac{1}{2}") gets math delimiters so math-verify reads it as math.
    if "$" in reference or "\\boxed" in reference or "\\(" in reference or "\\[" in reference:
        return reference
    return f"${reference}$"


def check_answer(reference: str, response: str, soft_timeout_s: int = 1) -> tuple[str, str | None]:
    """math-verify: the response's final answer (boxed first) against the reference."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    config = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    gold = parse(_gold_text(reference), extraction_config=config, parsing_timeout=soft_timeout_s)
    if not gold:
        return "inconclusive", "the reference could not be parsed as math"
    pred = parse(response, extraction_config=config, parsing_timeout=soft_timeout_s)
    if not pred:
        return "inconclusive", "no final answer could be extracted from the response"
    ok = verify(gold, pred, timeout_seconds=soft_timeout_s)
    return ("correct" if ok else "incorrect"), None


def warm_up() -> None:
    """Run once in each new worker before it reports ready: math-verify's imports (sympy, its LaTeX
    parser) and first parse take seconds, which would otherwise count against the first item's deadline
    and time it out, and with it the first item after every worker replacement."""
    check_answer("1", "The answer is $\\boxed{1}$.")


def _worker_main(conn, check_path: str) -> None:
    module_name, _, name = check_path.partition(":")
    module = importlib.import_module(module_name)
    check = getattr(module, name)
    if callable(getattr(module, "warm_up", None)):  # a check's module may pay its start-up costs here
        module.warm_up()
    conn.send("ready")
    while True:
        batch = conn.recv()
        if batch is None:
            return
        for reference, response in batch:
            try:
                conn.send(check(reference, response))
            except Exception as exc:  # noqa: BLE001 - any failure of one item is that item's error
                conn.send(("error", f"{type(exc).__name__}: {exc}"))


class _Worker:
    def __init__(self, ctx, check_path: str):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, check_path), daemon=True)
        self.proc.start()
        child.close()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join(5)
        self.conn.close()


class VerifyPool:
    """``await pool.check(reference, response)`` -> VerifyOutcome; never blocks the event loop."""

    def __init__(self, workers: int = 2, item_timeout_s: float = 2.0, max_pending: int = 100_000,
                 batch: int = 32, check_path: str = DEFAULT_CHECK, start_timeout_s: float = 60.0):
        self.workers = workers
        self.item_timeout_s = item_timeout_s
        self.max_pending = max_pending
        self.batch = batch
        self.check_path = check_path
        self.start_timeout_s = start_timeout_s
        self._ctx = multiprocessing.get_context("spawn")  # never fork a process that runs an engine client
        self._queue: queue.Queue = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self.pending = 0
        self.timeouts = 0
        self.restarts = 0

    def start(self) -> None:
        """Start the worker threads (each spawns its process). ``check`` does this on first use."""
        if self._threads:
            return
        for i in range(self.workers):
            t = threading.Thread(target=self._serve, name=f"libra-verify-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def close(self) -> None:
        self._closed = True
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(10)

    async def check(self, reference: str, response: str) -> VerifyOutcome:
        if not self._threads:
            self.start()
        if self.pending >= self.max_pending:
            return VerifyOutcome("error", f"the verifier queue is full ({self.max_pending} items)")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.pending += 1
        self._queue.put((reference, response, future, loop))
        try:
            return await future
        finally:
            self.pending -= 1

    # -- worker threads: each owns one process ---------------------------------------------------

    def _spawn(self) -> _Worker:
        worker = _Worker(self._ctx, self.check_path)
        if not worker.conn.poll(self.start_timeout_s):
            worker.kill()
            raise RuntimeError("verify worker did not start")
        worker.conn.recv()
        return worker

    @staticmethod
    def _resolve(job, outcome: VerifyOutcome) -> None:
        _, _, future, loop = job

        def set_result() -> None:
            if not future.done():
                future.set_result(outcome)

        loop.call_soon_threadsafe(set_result)

    def _serve(self) -> None:
        worker = self._spawn()
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                jobs = [first]
                while len(jobs) < self.batch:
                    try:
                        job = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if job is None:
                        self._queue.put(None)
                        break
                    jobs.append(job)
                jobs = [j for j in jobs if not j[2].cancelled()]
                if not jobs:
                    continue
                worker.conn.send([(j[0], j[1]) for j in jobs])
                for i, job in enumerate(jobs):
                    if worker.conn.poll(self.item_timeout_s):
                        try:
                            status, message = worker.conn.recv()
                        except (EOFError, OSError):
                            status, message = "error", "the verify worker crashed on this item"
                        else:
                            self._resolve(job, VerifyOutcome(status, message))
                            continue
                    else:
                        status, message = "timeout", f"verification took over {self.item_timeout_s:g} s"
                        self.timeouts += 1
                    # This item hung or crashed its worker: replace the worker, requeue the rest.
                    self._resolve(job, VerifyOutcome(status, message))
                    log.warning("verify worker replaced: %s", message)
                    worker.kill()
                    self.restarts += 1
                    worker = self._spawn()
                    for rest in jobs[i + 1:]:
                        self._queue.put(rest)
                    break
        finally:
            try:
                worker.conn.send(None)
            except OSError:
                pass
            worker.kill()


def measure(n: int = 2000, workers: int = 2) -> float:
    """Items/s for simple numeric answers (used by ``python -m service.judge.verifier``)."""

    async def run() -> float:
        pool = VerifyPool(workers=workers)
        pool.start()
        try:
            await asyncio.gather(*(pool.check("1", "warm up: 1") for _ in range(workers * 4)))
            t0 = time.perf_counter()
            outs = await asyncio.gather(*(pool.check(str(i + 400), f"{i} + 400 = {i + 400}. The answer is "
                                                     f"{i + 400}.") for i in range(n)))
            seconds = time.perf_counter() - t0
            assert all(o.status == "correct" for o in outs)
            return n / seconds
        finally:
            pool.close()

    return asyncio.run(run())


if __name__ == "__main__":
    print(f"math-verify through the pool: {measure():.0f} items/s (2 workers, simple numeric answers)")
