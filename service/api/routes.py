"""The native routes: each fetches the serving object, calls it, and maps the result to a response."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST

from service.api.dependencies import JSON_BODY
from service.api.protocol import (
    ERROR_RESPONSES,
    STREAM_RESPONSE,
    JudgeInfo,
    JudgesResponse,
    ScoreRequest,
    ScoreResponse,
    ScoreResult,
    StreamDone,
)
from service.api.serving import serving, with_cancellation
from service.engine.base import EngineDead
from service.judge.types import ScoreItem

router = APIRouter()
public = APIRouter()  # probes: answered without an API key

# The error statuses each route can answer, documented with the error envelope (OpenAPI): the scoring
# routes answer all of ERROR_RESPONSES; the others only these.
AUTH_ONLY = {401: ERROR_RESPONSES[401]}  # API keys configured and none matched
ENGINE_DOWN = {503: ERROR_RESPONSES[503]}  # the probes' "no"


@router.post("/score", response_model=ScoreResponse, summary="Judge a batch of items",
             responses={200: STREAM_RESPONSE, **ERROR_RESPONSES}, dependencies=[JSON_BODY])
@with_cancellation
async def score(body: ScoreRequest, request: Request) -> ScoreResponse | Response:
    service = serving(request)
    opts, timeout_s = service.options(body)
    items = [ScoreItem(question=i.question, response=i.response, reference=i.reference, id=i.id) for i in body.items]
    if body.stream:
        service.admit(request, len(items), opts)  # whole or refused, before the first byte
        model, judge = service.engine.model_name, opts.profile.name

        def line(r) -> bytes:
            return ScoreResult.from_result(r).model_dump_json().encode() + b"\n"

        def done(statuses) -> bytes:
            return StreamDone(items=len(items), statuses=dict(statuses), model=model,
                              judge=judge).model_dump_json().encode() + b"\n"

        return StreamingResponse(service.stream(request, items, opts, timeout_s, line, done),
                                 media_type="application/x-ndjson")
    results = await service.score(request, items, opts, timeout_s)
    out = ScoreResponse.model_construct(results=[ScoreResult.from_result(r) for r in results],
                                        model=service.engine.model_name, judge=opts.profile.name)
    # Serialised here: returning the model would make FastAPI validate every result again.
    return Response(out.model_dump_json(), media_type="application/json")


@router.get("/judges", response_model=JudgesResponse, summary="The judge profiles this server offers",
            responses=AUTH_ONLY)
async def judges(request: Request) -> JudgesResponse:
    service = serving(request)
    return JudgesResponse(model=service.engine.model_name, default=service.default_judge,
                          judges=[JudgeInfo(**p.describe()) for _, p in sorted(service.profiles.items())])


@router.get("/limits", summary="Request limits this server enforces", responses=AUTH_ONLY)
async def limits(request: Request) -> dict:
    service = serving(request)
    return {**service.settings.limits(), "scheduling_policy": service.scheduling_policy}


@router.get("/metrics", summary="Prometheus metrics of the service and the engine", include_in_schema=False)
async def metrics(request: Request) -> Response:
    return Response(serving(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


@public.get("/health", summary="Liveness: the process is up and the engine is not dead", responses=ENGINE_DOWN)
async def health(request: Request) -> dict[str, str]:
    engine = serving(request).engine
    if engine is None or engine.errored:
        raise EngineDead("engine has failed")
    return {"status": "ok"}


@public.get("/ready", summary="Readiness: the engine is loaded and a one-token probe succeeded recently",
            responses=ENGINE_DOWN)
async def ready(request: Request) -> dict:
    return serving(request).lifecycle.readiness()
