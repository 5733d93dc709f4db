"""``build_app(settings, open_engine, judge)``: the FastAPI app; its lifespan owns the engine.

No import-time globals: every piece of state hangs off ``app.state``, so two apps can live in one
process (the unit tests build many, each on a FakeEngine).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from service.api import compat
from service.api.admission import Admission
from service.api.errors import install_error_handlers
from service.api.middleware import LibraMiddleware
from service.api.routes import router
from service.config import Settings
from service.engine.base import JudgeEngine
from service.judge.profiles import ProfileError, load_all
from service.judge.scorer import Scorer
from service.judge.verifier import VerifyPool
from service.lifecycle import Lifecycle
from service.metrics import ServiceMetrics

EngineOpener = Callable[[], AbstractAsyncContextManager[JudgeEngine]]
log = logging.getLogger(__name__)


def build_app(settings: Settings, open_engine: EngineOpener, judge: str,
              on_engine_dead: Callable[[], None] | None = None) -> FastAPI:
    """The app. ``on_engine_dead`` is called once the engine has died (the CLI stops the server)."""
    profiles = load_all(settings.extra_judge_dirs)  # fail before the engine starts
    if judge not in profiles:
        raise ProfileError(f"unknown judge profile {judge!r}; known: {', '.join(sorted(profiles))}")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        verifier = None
        if settings.verify_workers:
            # Worker processes start on first use, so a server that never verifies pays nothing.
            verifier = VerifyPool(workers=settings.verify_workers, item_timeout_s=settings.verify_timeout_s,
                                  check_path=settings.verify_check)
        app.state.verifier = verifier
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
            engine, max_model_len=engine.max_model_len,
            cache_entries=settings.cache_entries, cache_bytes=settings.cache_mb * 2**20,
            group_priming=settings.group_priming, verifier=verifier,
        )

        def judged(queue_wait_s: float, judge_s: float) -> None:
            lifecycle.mark_alive()
            app.state.metrics.observe_judgment(queue_wait_s, judge_s)

        scorer.on_judgment = judged
        app.state.engine, app.state.scorer, app.state.lifecycle = engine, scorer, lifecycle
        await lifecycle.probe_once()
        lifecycle.start()
        try:
            yield
        finally:
            await lifecycle.stop()

    app = FastAPI(
        title="Libra Serve",
        summary="A thinking generative judge behind HTTP: rewards for RL trainers.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.profiles = profiles
    app.state.default_judge = judge
    app.state.engine = app.state.scorer = app.state.lifecycle = None
    app.state.admission = Admission(settings.admission_budget)
    app.state.metrics = ServiceMetrics(
        lambda: app.state.scorer,
        get_pending=lambda: app.state.admission.pending,
        get_engine_running=lambda: app.state.engine.num_unfinished_requests() if app.state.engine else 0,
    )
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(compat.router)
    app.add_middleware(LibraMiddleware, settings=settings, metrics=app.state.metrics)
    return app
