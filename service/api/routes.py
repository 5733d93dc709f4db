"""The native routes: each fetches the serving object, calls it, and maps the result to a response."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST

from service.api.dependencies import JSON_BODY
from service.api.protocol import ERROR_RESPONSES, JudgeInfo, JudgesResponse, ScoreRequest, VersionResponse
from service.api.results import STREAM_RESPONSE, ScoreResponse
from service.api.serving import serving
from service.engine.base import EngineDead

router = APIRouter()
public = APIRouter()  # probes: answered without an API key

# The error statuses each route can answer, documented with the error envelope (OpenAPI): the scoring
# routes answer all of ERROR_RESPONSES; the others only these.
AUTH_ONLY = {401: ERROR_RESPONSES[401]}  # API keys configured and none matched
ENGINE_DOWN = {503: ERROR_RESPONSES[503]}  # the probes' "no"


@router.post("/score", response_model=ScoreResponse, summary="Judge a batch of items",
             responses={200: STREAM_RESPONSE, **ERROR_RESPONSES}, dependencies=[JSON_BODY])
async def score(body: ScoreRequest, request: Request) -> ScoreResponse | Response:
    out = await serving(request).score_request(body, request)
    if isinstance(out, ScoreResponse):
        # Serialised here: returning the model would make FastAPI validate every result again.
        return Response(out.model_dump_json(), media_type="application/json")
    return StreamingResponse(out, media_type="application/x-ndjson")


@router.get("/judges", response_model=JudgesResponse, summary="The judge profiles this server offers",
            responses=AUTH_ONLY)
async def judges(request: Request) -> JudgesResponse:
    service = serving(request)
    return JudgesResponse(model=service.engine.model_name, default=service.default_judge,
                          judges=[JudgeInfo(**p.describe()) for _, p in sorted(service.profiles.items())])


@router.get("/version", response_model=VersionResponse, summary="The build: service and vLLM versions, model, "
            "and a content hash of each judge profile", responses=AUTH_ONLY)
async def version(request: Request) -> VersionResponse:
    return serving(request).version()


@router.get("/limits", summary="Request limits this server enforces", responses=AUTH_ONLY)
async def limits(request: Request) -> dict:
    service = serving(request)
    # runner: what the engine runs its model as, "generate" (generative judges) or "pooling" (a scalar reward
    # model); only profiles of that kind are served (GET /judges: kind).
    return {**service.settings.limits(), "scheduling_policy": service.scheduling_policy, "runner": service.runner}


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
