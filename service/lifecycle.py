"""Readiness, engine-death handling and draining: the service's life after the engine has started.

- ``/ready`` is true when the engine is alive and produced a token recently: a one-token probe runs
  every ``ready_probe_interval_s``, and every finished judgment counts as proof of life too (so a
  saturated engine, where the probe waits its turn, stays ready).
- A watchdog polls the engine. When it dies (``EngineDeadError``, its core process killed) new and
  in-flight requests get a 503 envelope, ``/ready`` fails at once, and after a short grace for those
  responses the process is asked to exit with a non-zero code, so a supervisor restarts it.
- On SIGTERM the service drains: new requests get 503, in-flight work may finish within the grace.

It says "no" by raising: ``EngineDead`` when the engine has died, ``NotServing`` (draining, or no
token recently) otherwise. The HTTP layer maps both to the 503 envelope (``service/api/errors.py``);
this module knows nothing of HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from service.engine.base import EngineDead, JudgeEngine, RequestKind, SamplingSpec, new_request_id

log = logging.getLogger(__name__)


class NotServing(Exception):
    """The service takes no new work for now (draining, or the engine has not answered lately);
    ``retry_after`` is how many seconds a client should wait before asking again."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.message, self.retry_after = message, retry_after


class Lifecycle:
    def __init__(self, engine: JudgeEngine, probe_interval_s: float, max_age_s: float,
                 on_dead: Callable[[], None] | None = None, clock=time.monotonic):
        self.engine = engine
        self.probe_interval_s = probe_interval_s
        self.max_age_s = max_age_s
        self.on_dead = on_dead
        self.clock = clock
        self.last_alive: float | None = None
        self.dead_since: float | None = None
        self.draining = False
        self._tasks: list[asyncio.Task] = []
        self._probe_ids = list(engine.tokenizer.encode("ready?", add_special_tokens=False)) or [0]

    # -- state ------------------------------------------------------------------------------------

    @property
    def dead(self) -> bool:
        return self.dead_since is not None

    def mark_alive(self) -> None:
        self.last_alive = self.clock()

    def check_serving(self) -> None:
        """Raise ``EngineDead`` or ``NotServing`` when new work must not be admitted."""
        if self.dead or self.engine.errored:
            raise EngineDead("the judge engine has died; the service is restarting")
        if self.draining:
            raise NotServing("the service is shutting down; retry on another replica or after restart", 5)

    def readiness(self) -> dict:
        """``/ready``'s answer; raises ``EngineDead`` or ``NotServing`` when not ready."""
        if self.dead or self.engine.errored:
            raise EngineDead("the judge engine has died")
        if self.draining:
            raise NotServing("shutting down", 5)
        age = None if self.last_alive is None else self.clock() - self.last_alive
        if age is None or age > self.max_age_s:
            raise NotServing("the engine has not produced a token recently" if age is not None
                             else "the engine has not answered its first probe yet", 2)
        return {"status": "ready", "last_token_age_s": round(age, 3)}

    # -- background tasks -------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._probe_loop()), asyncio.create_task(self._watchdog())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def probe_once(self) -> bool:
        try:
            if self.engine.runner == "pooling":  # a scalar reward model scores; it cannot generate
                await self.engine.classify(self._probe_ids, new_request_id(RequestKind.ready))
            else:
                await self.engine.generate(self._probe_ids, SamplingSpec(max_tokens=1),
                                           new_request_id(RequestKind.ready))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure means not ready; the watchdog handles death
            log.warning("readiness probe failed: %s", exc)
            return False
        self.mark_alive()
        return True

    async def _probe_loop(self) -> None:
        while not self.dead:
            await self.probe_once()
            await asyncio.sleep(self.probe_interval_s)

    async def _watchdog(self, poll_s: float = 0.25, grace_s: float = 1.0) -> None:
        while not self.engine.errored:
            await asyncio.sleep(poll_s)
        self.dead_since = self.clock()
        log.error("the judge engine died; failing requests with 503 and exiting for a restart")
        await asyncio.sleep(grace_s)  # let in-flight requests send their 503s
        if self.on_dead is not None:
            self.on_dead()
