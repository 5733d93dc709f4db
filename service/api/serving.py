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
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request, Response

from service.api.admission import Admission
from service.api.errors import ApiError, ErrorCode
from service.api.protocol import ScoreRequest
from service.config import Settings
from service.engine.base import JudgeEngine
from service.judge.profiles import Profile
from service.judge.scorer import Scorer
from service.judge.types import ItemResult, JudgeOptions, ScoreItem
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
            raise ApiError(ErrorCode.invalid_request,
                           "samples > 1 needs temperature > 0: greedy samples would all be identical", "samples")
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

    def default_options(self, judge: str | None) -> tuple[JudgeOptions, float]:
        """A trainer endpoint's options: the profile's defaults and the trainer endpoints' deadline."""
        return JudgeOptions.from_profile(self.profile(judge)), self.settings.trainer_timeout_s

    def reward_or_failure(self, result: ItemResult) -> float:
        """The reward a trainer endpoint reports: the judge's, or the configured failure reward."""
        reward = result.judgment.reward
        return reward if reward is not None else self.settings.failure_reward

    # -- scoring -----------------------------------------------------------------------------------

    async def score(self, request: Request, items: list[ScoreItem], opts: JudgeOptions, timeout_s: float
                    ) -> list[ItemResult]:
        """Refuse new work when not serving, admit the items whole or answer 429, score them, and
        record metrics and the access log's fields."""
        self.lifecycle.check_serving()
        n = len(items)
        if not n:
            return []
        if not self.admission.try_admit(n):
            self.metrics.rejections.labels("rate_limited").inc()
            raise ApiError(ErrorCode.rate_limited,
                           f"the server has {self.admission.pending} items in progress (budget "
                           f"{self.admission.budget}); retry later",
                           headers={"Retry-After": str(self.admission.retry_after(n))})
        request.state.items = n
        request.state.judge = opts.profile.name
        started = time.perf_counter()
        try:
            results = await self.scorer.score(items, opts, timeout_s=timeout_s)
        finally:
            self.admission.release(n)
        self.metrics.observe_items(results, time.perf_counter() - started)
        request.state.statuses = dict(Counter(r.judgment.status.value for r in results))
        return results


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
