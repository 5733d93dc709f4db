"""The serving layer: the rules every scoring endpoint shares, in one object on ``app.state.serving``.

    route (HTTP in/out only) -> ScoringService.options (request rules that need server state)
    -> ScoringService.score (refuse when not serving, admit whole or 429, score, metrics, log fields)
    -> Scorer (judge/)

``with_cancellation`` is the one place that handles a client that goes away: it races the route's
handler against the disconnect and cancels the handler, so the scorer aborts the engine work.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

from fastapi import Request, Response

from service.api.admission import Admission
from service.api.errors import ApiError, ErrorCode
from service.api.protocol import ScoreRequest
from service.config import Settings
from service.engine.base import JudgeEngine
from service.judge.prob import unsupported
from service.judge.profiles import Profile
from service.judge.scorer import Scorer
from service.judge.types import ItemResult, ItemStatus, JudgeOptions, Judgment, ScoreItem
from service.judge.verifier import VerifyPool
from service.lifecycle import Lifecycle
from service.metrics import ServiceMetrics

CLIENT_CLOSED = 499  # nginx's status for a client that closed the connection before the answer


class ScoringService:
    """Built with the app; ``attach`` gives it the engine and what lives as long as the engine."""

    def __init__(self, settings: Settings, profiles: dict[str, Profile], default_judge: str,
                 admission: Admission, metrics: ServiceMetrics):
        self.settings = settings
        self.profiles = profiles
        self.default_judge = default_judge
        self.admission = admission
        self.metrics = metrics
        self.engine: JudgeEngine | None = None
        self.scorer: Scorer | None = None
        self.lifecycle: Lifecycle | None = None
        self.verifier: VerifyPool | None = None

    def attach(self, engine: JudgeEngine, scorer: Scorer, lifecycle: Lifecycle, verifier: VerifyPool | None) -> None:
        self.engine, self.scorer, self.lifecycle, self.verifier = engine, scorer, lifecycle, verifier

    # -- request rules -----------------------------------------------------------------------------

    def profile(self, name: str | None) -> Profile:
        name = name or self.default_judge
        profile = self.profiles.get(name)
        if profile is None:
            raise ApiError(ErrorCode.invalid_request,
                           f"unknown judge {name!r}; available: {', '.join(sorted(self.profiles))}", "judge")
        return profile

    def options(self, body: ScoreRequest) -> tuple[JudgeOptions, float]:
        """A /score request's options and deadline; raises a 422 envelope naming the field."""
        settings = self.settings
        profile = self.profile(body.judge)
        if len(body.items) > settings.max_items_per_request:
            raise ApiError(ErrorCode.invalid_request,
                           f"{len(body.items)} items exceeds the limit of {settings.max_items_per_request}", "items")
        opts = body.to_options(profile)
        if opts.samples > settings.max_samples:
            raise ApiError(ErrorCode.invalid_request, f"samples must be at most {settings.max_samples}", "samples")
        if opts.samples > 1 and opts.temperature == 0.0:
            why = ("an explicit temperature 0 with samples > 1 would give identical samples" if body.temperature == 0
                   else f"judge {profile.name!r} has no vote_temperature; set temperature > 0")
            raise ApiError(ErrorCode.invalid_request, f"samples > 1 needs temperature > 0: {why}",
                           "temperature" if body.temperature == 0 else "samples")
        if body.reward_mode == "prob" and (why := unsupported(profile)):
            raise ApiError(ErrorCode.invalid_request, f"reward_mode 'prob' is not available: {why}", "reward_mode")
        probe = settings.verdict_prob if body.verdict_prob is None else body.verdict_prob
        opts = replace(opts, probe=probe, priority=self.priority(body.priority, len(body.items)))
        if body.max_thinking_tokens is not None and not profile.can_force:
            raise ApiError(ErrorCode.invalid_request,
                           f"judge {profile.name!r} cannot force a verdict, so it takes no max_thinking_tokens",
                           "max_thinking_tokens")
        if opts.max_thinking_tokens is not None and opts.max_thinking_tokens > opts.max_tokens:
            raise ApiError(ErrorCode.invalid_request,
                           f"max_thinking_tokens must be at most the judge's max_tokens ({opts.max_tokens})",
                           "max_thinking_tokens")
        if body.seed is not None and self.engine is not None and not self.engine.seeded_sampling:
            raise ApiError(ErrorCode.invalid_request, "seed is not supported by this server's engine (vLLM on "
                           "CPU cannot rewind a seeded sampler); leave it out, or use a GPU server", "seed")
        if body.mode != "judge" and self.verifier is None:
            raise ApiError(ErrorCode.invalid_request, f"mode {body.mode!r} needs rule-based verification, which "
                           "is off on this server (LIBRA_VERIFY_WORKERS=0)", "mode")
        if body.timeout_s is not None and body.timeout_s > settings.max_timeout_s:
            raise ApiError(ErrorCode.invalid_request, f"timeout_s must be at most {settings.max_timeout_s:g}",
                           "timeout_s")
        return opts, body.timeout_s or settings.default_timeout_s

    def default_options(self, judge: str | None, reward_mode: str = "verdict", items: int = 1
                        ) -> tuple[JudgeOptions, float]:
        """A trainer endpoint's options: the profile's defaults and the trainer endpoints' deadline."""
        profile = self.profile(judge)
        if reward_mode == "prob" and (why := unsupported(profile)):
            raise ApiError(ErrorCode.invalid_request, f"reward_mode 'prob' is not available: {why}", "reward_mode")
        opts = JudgeOptions.from_profile(profile, reward_mode=reward_mode, probe=self.settings.verdict_prob,
                                         priority=self.priority(None, items))
        return opts, self.settings.trainer_timeout_s

    @property
    def scheduling_policy(self) -> str:
        return getattr(self.engine, "scheduling_policy", "fcfs")

    def priority(self, asked: int | None, items: int) -> int:
        """The engine priority of a request's items: the request's, or small requests' default; 0 (and
        the request's priority ignored) unless the engine schedules by priority."""
        if self.scheduling_policy != "priority":
            return 0
        if asked is not None:
            return asked
        small = self.settings.small_request_items
        return self.settings.small_request_priority if small and items <= small else 0

    def reward_or_failure(self, result: ItemResult) -> float:
        """The reward a trainer endpoint reports: the judge's, or the configured failure reward."""
        reward = result.judgment.reward
        return reward if reward is not None else self.settings.failure_reward

    # -- scoring -----------------------------------------------------------------------------------

    def admit(self, request: Request, n: int, opts: JudgeOptions) -> None:
        """Refuse new work when not serving (503), admit ``n`` items whole or answer 429."""
        self.lifecycle.check_serving()
        if not self.admission.try_admit(n):
            self.metrics.rejections.labels("rate_limited").inc()
            raise ApiError(ErrorCode.rate_limited,
                           f"the server has {self.admission.pending} items in progress (budget "
                           f"{self.admission.budget}); retry later",
                           headers={"Retry-After": str(self.admission.retry_after(n))})
        request.state.items = n
        request.state.judge = opts.profile.name

    async def score(self, request: Request, items: list[ScoreItem], opts: JudgeOptions, timeout_s: float
                    ) -> list[ItemResult]:
        """Admit the items, score them, and record metrics and the access log's fields."""
        n = len(items)
        if not n:
            self.lifecycle.check_serving()
            return []
        self.admit(request, n, opts)
        started = time.perf_counter()
        try:
            results = await self.scorer.score(items, opts, timeout_s=timeout_s)
        finally:
            self.admission.release(n)
        self.metrics.observe_items(results, time.perf_counter() - started)
        request.state.statuses = dict(Counter(r.judgment.status.value for r in results))
        return results

    async def stream(self, request: Request, items: list[ScoreItem], opts: JudgeOptions, timeout_s: float,
                     line: Callable[[ItemResult], bytes], done: Callable[[Counter], bytes]) -> AsyncIterator[bytes]:
        """The items' results as NDJSON lines, each the moment it is decided, then the final line.
        Admission happens in the caller, before the first byte (``admit``); this releases it. Once the
        stream has begun nothing is dropped: if the engine dies, every item not yet sent gets an
        ``error`` line and the final line still comes. A client that goes away cancels the scoring
        (the engine work is aborted)."""
        n = len(items)
        queue: asyncio.Queue[ItemResult] = asyncio.Queue()
        sent: set[int] = set()
        statuses: Counter = Counter()
        started = time.perf_counter()
        work = asyncio.ensure_future(self.scorer.score(items, opts, timeout_s=timeout_s, on_result=queue.put_nowait))
        gone = asyncio.ensure_future(_until_disconnect(request))

        def send(r: ItemResult) -> bytes:
            sent.add(r.index)
            statuses[r.judgment.status.value] += 1
            return line(r)

        try:
            while not work.done() or not queue.empty():
                if not queue.empty():
                    yield send(queue.get_nowait())
                    continue
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, work, gone}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield send(getter.result())
                else:
                    getter.cancel()
                if gone.done():
                    request.state.statuses = {"cancelled": n - len(sent)}
                    return
            failure = work.exception()
            if failure is not None:
                message = f"{type(failure).__name__}: {failure}"
                for i, item in enumerate(items):
                    if i not in sent:
                        yield send(ItemResult(i, item.id, Judgment(ItemStatus.error, message=message)))
            else:
                self.metrics.observe_items(work.result(), time.perf_counter() - started)
            request.state.statuses = dict(statuses)
            yield done(statuses)
        finally:
            gone.cancel()
            if not work.done():
                work.cancel()
            await asyncio.gather(work, return_exceptions=True)
            self.admission.release(n)


def serving(request: Request) -> ScoringService:
    return request.app.state.serving


async def _until_disconnect(request: Request) -> None:
    """Returns when the client goes away. The body is already read, so only a disconnect can arrive."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def with_cancellation(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Run a route's handler until it answers or the client disconnects, whichever comes first. On a
    disconnect the handler is cancelled (the scorer aborts its engine work) and the access log shows
    499 with the items as ``cancelled``. The handler must take ``request: Request``."""

    @functools.wraps(handler)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        request: Request = kwargs["request"]
        work = asyncio.ensure_future(handler(*args, **kwargs))
        watcher = asyncio.ensure_future(_until_disconnect(request))
        try:
            await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
            if not work.done():  # the client went away (or this wrapper was cancelled): abort the work
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
        if work.cancelled():
            request.state.statuses = {"cancelled": getattr(request.state, "items", 0)}
            return Response(status_code=CLIENT_CLOSED)
        return work.result()

    return wrapper
