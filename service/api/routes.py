"""Thin routes: fetch the handler from app state, call one method, map the result to a response."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from service.api.errors import ApiError, ErrorCode
from service.api.protocol import (
    ERROR_RESPONSES,
    JudgeInfo,
    JudgesResponse,
    ScoreRequest,
    ScoreResponse,
    ScoreResult,
)
from service.engine.base import EngineDead
from service.judge.types import ItemResult, JudgeOptions, ScoreItem

router = APIRouter()


def _check(body: ScoreRequest, request: Request):
    """Request-level rules that need server state; raises a 422 envelope naming the field."""
    state = request.app.state
    settings = state.settings
    name = body.judge or state.default_judge
    profile = state.profiles.get(name)
    if profile is None:
        raise ApiError(ErrorCode.invalid_request,
                       f"unknown judge {name!r}; available: {', '.join(sorted(state.profiles))}", "judge")
    if len(body.items) > settings.max_items_per_request:
        raise ApiError(ErrorCode.invalid_request,
                       f"{len(body.items)} items exceeds the limit of {settings.max_items_per_request}", "items")
    limit = settings.max_text_chars
    for i, item in enumerate(body.items):
        for field in ("question", "response", "reference"):
            value = getattr(item, field)
            if value is not None and len(value) > limit:
                raise ApiError(ErrorCode.invalid_request,
                               f"items.{i}.{field} is {len(value)} characters; the limit is {limit}",
                               f"items.{i}.{field}")
    opts = body.to_options(profile)
    if opts.samples > settings.max_samples:
        raise ApiError(ErrorCode.invalid_request, f"samples must be at most {settings.max_samples}", "samples")
    if opts.samples > 1 and opts.temperature == 0.0:
        raise ApiError(ErrorCode.invalid_request,
                       "samples > 1 needs temperature > 0: greedy samples would all be identical", "samples")
    if body.max_thinking_tokens is not None and not profile.can_force:
        raise ApiError(ErrorCode.invalid_request,
                       f"judge {name!r} cannot force a verdict, so it takes no max_thinking_tokens",
                       "max_thinking_tokens")
    if opts.max_thinking_tokens is not None and opts.max_thinking_tokens > opts.max_tokens:
        raise ApiError(ErrorCode.invalid_request,
                       f"max_thinking_tokens must be at most the judge's max_tokens ({opts.max_tokens})",
                       "max_thinking_tokens")
    if body.seed is not None and state.engine is not None and not state.engine.seeded_sampling:
        raise ApiError(ErrorCode.invalid_request, "seed is not supported by this server's engine (vLLM on CPU "
                       "cannot rewind a seeded sampler); leave it out, or use a GPU server", "seed")
    if body.mode != "judge" and state.verifier is None:
        raise ApiError(ErrorCode.invalid_request, f"mode {body.mode!r} needs rule-based verification, which is "
                       "off on this server (LIBRA_VERIFY_WORKERS=0)", "mode")
    if body.timeout_s is not None and body.timeout_s > settings.max_timeout_s:
        raise ApiError(ErrorCode.invalid_request, f"timeout_s must be at most {settings.max_timeout_s:g}",
                       "timeout_s")
    return profile, opts, body.timeout_s or settings.default_timeout_s


async def _until_disconnect(request: Request) -> None:
    """Returns when the client goes away. The body is already read, so only a disconnect can arrive."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def run_scoring(request: Request, items: list[ScoreItem], opts: JudgeOptions, timeout_s: float
                      ) -> list[ItemResult] | None:
    """What every scoring endpoint does around the scorer: refuse new work when not serving, admit the
    items whole or answer 429, abort the engine work if the client disconnects (returns None), and
    record metrics and the access log's fields."""
    state = request.app.state
    state.lifecycle.check_serving()
    n = len(items)
    admission = state.admission
    if not admission.try_admit(n):
        state.metrics.rejections.labels("rate_limited").inc()
        raise ApiError(ErrorCode.rate_limited,
                       f"the server has {admission.pending} items in progress (budget {admission.budget}); "
                       f"retry later", headers={"Retry-After": str(admission.retry_after(n))})
    started = time.perf_counter()
    work = asyncio.ensure_future(state.scorer.score(items, opts, timeout_s=timeout_s))
    watcher = asyncio.ensure_future(_until_disconnect(request))
    try:
        await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if not work.done():  # the client disconnected: abort its engine work now
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
            request.state.statuses = {"cancelled": n}
            return None
        results = work.result()
    finally:
        watcher.cancel()
        admission.release(n)
    state.metrics.observe_items(results, time.perf_counter() - started)
    request.state.items = n
    request.state.judge = opts.profile.name
    request.state.statuses = dict(Counter(r.judgment.status.value for r in results))
    return results


@router.post("/score", response_model=ScoreResponse, summary="Judge a batch of items", responses=ERROR_RESPONSES)
async def score(body: ScoreRequest, request: Request) -> ScoreResponse | Response:
    profile, opts, timeout_s = _check(body, request)
    items = [ScoreItem(question=i.question, response=i.response, reference=i.reference, id=i.id)
             for i in body.items]
    results = await run_scoring(request, items, opts, timeout_s)
    if results is None:
        return Response(status_code=499)
    state = request.app.state
    body_out = ScoreResponse.model_construct(results=[ScoreResult.from_result(r) for r in results],
                                             model=state.engine.model_name, judge=profile.name)
    # Serialised here: returning the model would make FastAPI validate every result again.
    return Response(body_out.model_dump_json(), media_type="application/json")


@router.get("/judges", response_model=JudgesResponse, summary="The judge profiles this server offers")
async def judges(request: Request) -> JudgesResponse:
    state = request.app.state
    return JudgesResponse(model=state.engine.model_name, default=state.default_judge,
                          judges=[JudgeInfo(**p.describe()) for _, p in sorted(state.profiles.items())])


@router.get("/limits", summary="Request limits this server enforces")
async def limits(request: Request) -> dict:
    return request.app.state.settings.limits()


@router.get("/metrics", summary="Prometheus metrics of the service and the engine", include_in_schema=False)
async def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/health", summary="Liveness: the process is up and the engine is not dead")
async def health(request: Request) -> dict[str, str]:
    engine = request.app.state.engine
    if engine is None or engine.errored:
        raise EngineDead("engine has failed")
    return {"status": "ok"}


@router.get("/ready", summary="Readiness: the engine is loaded and a one-token probe succeeded recently")
async def ready(request: Request) -> dict:
    return request.app.state.lifecycle.readiness()
