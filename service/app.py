"""``build_app(settings, open_engine, judge)``: the FastAPI app; its lifespan owns the engine.

The layers, outside in (the package map is in ``service/__init__.py``):

    middleware (api/middleware/) -> routes (api/routes.py, openrlhf.py, slime.py)
    -> ScoringService (api/serving.py, on ``app.state.serving``) -> Scorer (judge/) -> JudgeEngine (engine/)

No import-time globals: every piece of state hangs off ``app.state``, so two apps can live in one
process (the unit tests build many, each on a FakeEngine).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from service.api import nemo_gym, openrlhf, routes, slime
from service.api.admission import Admission
from service.api.docs import install_docs
from service.api.errors import install_error_handlers
from service.api.middleware import ApiKeyMiddleware, BodyLimitMiddleware, RequestLogMiddleware
from service.api.serving import ScoringService
from service.config import Settings
from service.engine.base import JudgeEngine
from service.judge.profiles import ProfileError, load_all
from service.judge.scorer import Scorer
from service.judge.verifier import DEFAULT_CHECK, VerifyPool
from service.lifecycle import Lifecycle
from service.metrics import ServiceMetrics, versions

EngineOpener = Callable[[], AbstractAsyncContextManager[JudgeEngine]]
log = logging.getLogger(__name__)


def build_app(settings: Settings, open_engine: EngineOpener, judge: str,
              on_engine_dead: Callable[[], None] | None = None, verify_check: str = DEFAULT_CHECK) -> FastAPI:
    """The app. ``on_engine_dead`` is called once the engine has died (the CLI stops the server);
    ``verify_check`` is the ``module:function`` the verify workers run (tests pass one that hangs)."""
    profiles = load_all(settings.extra_judge_dirs)  # fail before the engine starts
    if judge not in profiles:
        raise ProfileError(f"unknown judge profile {judge!r}; known: {', '.join(sorted(profiles))}")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        verifier = None
        if settings.verify_workers:
            # Worker processes start on first use, so a server that never verifies pays nothing.
            verifier = VerifyPool(workers=settings.verify_workers, item_timeout_s=settings.verify_timeout_s,
                                  check_path=verify_check)
        try:
            async with open_engine() as engine:
                async with _serving(app, engine, verifier):
                    yield
        finally:
            if verifier is not None:
                verifier.close()

    @asynccontextmanager
    async def _serving(app: FastAPI, engine: JudgeEngine, verifier: VerifyPool | None):
        """Everything that lives exactly as long as the engine: readiness, scorer, metrics hooks."""
        lifecycle = Lifecycle(engine, settings.ready_probe_interval_s, settings.ready_max_age_s,
                              on_dead=on_engine_dead)
        scorer = Scorer(
            engine,
            cache_entries=settings.cache_entries, cache_bytes=settings.cache_mb * 2**20,
            group_priming=settings.group_priming, verifier=verifier, max_text_chars=settings.max_text_chars,
        )

        def judged(queue_wait_s: float, judge_s: float) -> None:
            lifecycle.mark_alive()
            metrics.observe_judgment(queue_wait_s, judge_s)

        scorer.on_judgment = judged
        app.state.serving.attach(engine, scorer, lifecycle, verifier)
        await lifecycle.probe_once()
        lifecycle.start()
        try:
            yield
        finally:
            await lifecycle.stop()

    app = FastAPI(
        title="Libra Serve",
        summary="A thinking generative judge behind HTTP: rewards for RL trainers.",
        version=versions()["version"] or "unknown",  # the installed build's, so /openapi.json cannot drift
        lifespan=lifespan,
        docs_url=None, redoc_url=None,  # /docs and /redoc come from api/docs.py, their assets served here (no CDN)
    )
    docs_paths = install_docs(app)
    admission = Admission(settings.admission_budget)
    metrics = ServiceMetrics(
        lambda: app.state.serving.scorer,
        get_pending=lambda: admission.pending,
        get_engine_running=lambda: app.state.serving.engine.num_unfinished_requests() if app.state.serving.engine
        else 0,
        get_model=lambda: app.state.serving.engine.model_name if app.state.serving.engine else None,
    )
    app.state.serving = ScoringService(settings, profiles, judge, admission, metrics)
    install_error_handlers(app)
    for module in (routes, openrlhf, slime, nemo_gym):
        app.include_router(module.router)
    app.include_router(routes.public)
    # Added innermost first: the request log wraps everything, so refused requests are logged too.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    keys = settings.api_key_list()
    if keys:
        app.add_middleware(ApiKeyMiddleware, keys=keys, public_paths=_public_paths(docs_paths, settings))
    app.add_middleware(RequestLogMiddleware, metrics=metrics, routes=app.router.routes)
    return app


def _public_paths(docs_paths: set[str], settings: Settings) -> set[str]:
    """Paths that need no API key: the routes on ``routes.public`` (probes), the API docs (the pages,
    /openapi.json and the pages' assets), and /metrics unless ``metrics_auth``."""
    paths = {route.path for route in routes.public.routes} | docs_paths
    if not settings.metrics_auth:
        paths.add("/metrics")
    return paths
