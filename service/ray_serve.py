"""Libra Serve on Ray Serve: replicas of the same app, each with its own vLLM engine, behind Ray's proxy.

    serve run docker/ray/serve.yaml                       # or `serve deploy`, or KubeRay's RayService
    libra-serve ray --num-replicas 2 [serve's flags]      # the same application, on a local Ray

``app_builder`` is the Serve config's ``import_path``. Its ``args`` carry ``libra-serve serve``'s own flags
(``serve_args``: --model, --judge, --judges-dir and every vLLM engine flag) and ``settings`` (Settings fields,
as ``LIBRA_*`` would set them). They are checked where the application is built, by serve's own parser and
decisions (``service/launch.py``) and ``build_app``'s own judge check, so a bad flag or an unknown judge fails
the deploy with the message ``libra-serve serve`` prints.

Each replica (``LibraJudge``) calls ``build_app`` in ``__serve_build_asgi_app__`` and Ray runs the app's
lifespan, which starts the replica's own engine: the routes and the contract are those of ``libra-serve
serve``. What maps onto Ray Serve:

- **Readiness and engine death -> ``check_health``.** Ray routes to a replica only after its first health check
  passes, which here needs a token from the engine. Afterwards the check fails once the engine died; Ray then
  stops the replica (gracefully: its in-flight requests already got their 503) and starts another.
- **Backpressure stays ours.** ``max_ongoing_requests`` is the admission budget (plus room for probes), so Ray
  hands every request to a replica, whose admission answers 429 with Retry-After. Ray queues a request only
  when no replica can take one (all starting, or all at max_ongoing_requests); past ``max_queued_requests``
  Ray refuses it itself, with 429 and Retry-After (``backpressure_config``), which a client treats alike.
- **Metrics.** Every replica pushes its exposition (``libra_*``, ``vllm:*``, process) to ``LibraMetrics``, a
  second deployment of the application that needs no CPU; ``GET /metrics`` on any replica answers every live
  replica's series, each labelled ``replica`` (Ray's replica id, the label of Ray's own ``ray_serve_*``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import shlex
import signal
import sys
import time
from argparse import Namespace
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ray import serve

from service.config import Settings
from service.engine.base import EngineDead
from service.launch import ModelKindError, ServeSpec, check_model_kind, parse_serve_args
from service.lifecycle import NotServing

log = logging.getLogger(__name__)

APP_NAME = "libra"
DEPLOYMENT = "LibraJudge"
PROBE_ROOM = 64  # requests beyond the admission budget a replica still takes: probes, /metrics, /judges
METRICS_PUSH_S = 2.0  # how often a replica sends its exposition to LibraMetrics
METRICS_STALE_S = 10.0  # a replica silent for this long is gone (stopped, replaced): its series are dropped
# Settings that are flags of `libra-serve serve` (and so belong in serve_args) or mean nothing behind Ray's proxy.
FLAG_SETTINGS = {"model": "--model", "vllm_args": "serve_args", "judge": "--judge", "judges_dir": "--judges-dir",
                 "host": "Ray's http_options", "port": "Ray's http_options"}
_DEFAULTS = Settings.model_fields


class DeployError(ValueError):
    """A configuration this application cannot run; the message is one line."""


class LibraArgs(BaseModel):
    """The application's ``args`` in a Serve config."""

    model_config = ConfigDict(extra="forbid")
    serve_args: list[str] | str = Field(default_factory=list, description="libra-serve serve's flags: --model, "
                                        "--judge, vLLM engine flags (a list, or one shell-quoted string)")
    settings: dict[str, Any] = Field(default_factory=dict, description="Settings fields (LIBRA_* without the "
                                     "prefix, lower case), e.g. admission_budget")

    def argv(self) -> list[str]:
        return shlex.split(self.serve_args) if isinstance(self.serve_args, str) else [str(a) for a in self.serve_args]


def deploy_spec(serve_args: Sequence[str], overrides: dict[str, Any] | None = None) -> ServeSpec:
    """``libra-serve serve``'s decisions (``service.launch``) on a deploy's flags and settings, checked where the
    application is built: the app is built once without an engine, so an unknown judge fails here. Raises
    DeployError with the line ``libra-serve serve`` prints."""
    from service.app import build_app
    from service.judge.profiles import ProfileError

    overrides = dict(overrides or {})
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args = parse_serve_args(list(serve_args))
    except SystemExit as exc:  # argparse printed usage and "libra-serve serve: error: ..." and exited
        lines = stderr.getvalue().strip().splitlines()
        raise DeployError(lines[-1] if lines else f"libra-serve serve: exit status {exc.code}") from None
    for name in overrides:
        if name in FLAG_SETTINGS:
            raise DeployError(f"setting {name!r} is not a setting here: use {FLAG_SETTINGS[name]}")
        if name not in _DEFAULTS:
            known = ", ".join(sorted(set(_DEFAULTS) - set(FLAG_SETTINGS)))
            raise DeployError(f"unknown setting {name!r}; known: {known}")
    try:
        spec = ServeSpec.from_args(args, overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise DeployError(f"setting {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    try:
        build_app(spec.settings, _no_engine, spec.judge)
        check_model_kind(spec)
    except (ProfileError, ModelKindError) as exc:
        raise DeployError(str(exc)) from None
    return spec


def _no_engine():
    raise AssertionError("the deploy-time check never starts an engine")


def merge_expositions(texts: dict[str, str], label: str = "replica") -> bytes:
    """Several replicas' /metrics texts as one exposition: each family once, every sample labelled ``label``."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.metrics_core import Metric
    from prometheus_client.parser import text_string_to_metric_families

    families: dict[str, Metric] = {}
    for replica, text in sorted(texts.items()):
        for family in text_string_to_metric_families(text):
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
            merged.samples += [s._replace(labels={**s.labels, label: replica}) for s in family.samples]

    class Merged:
        def collect(self):
            return iter(families.values())

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Merged())
    return generate_latest(registry)


def _serve_metrics_from(app, render: Callable[[], Awaitable[bytes]]) -> None:
    """Point the app's /metrics at ``render`` (every replica's series). The route keeps its path, so the
    middlewares (request log, API keys with LIBRA_METRICS_AUTH) treat it as before."""
    from fastapi import Response
    from prometheus_client import CONTENT_TYPE_LATEST

    async def metrics() -> Response:
        return Response(await render(), media_type=CONTENT_TYPE_LATEST)

    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) != "/metrics"]
    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False,
                      summary="Prometheus metrics of every replica of the application, labelled replica")


@serve.deployment(name="LibraMetrics", num_replicas=1, max_ongoing_requests=1000, ray_actor_options={"num_cpus": 0})
class MetricsHub:
    """The latest exposition of each replica (pushed every METRICS_PUSH_S); silent replicas age out."""

    def __init__(self) -> None:
        self._latest: dict[str, tuple[float, str]] = {}

    async def push(self, replica: str, text: str) -> None:
        self._latest[replica] = (time.monotonic(), text)

    async def forget(self, replica: str) -> None:
        self._latest.pop(replica, None)

    async def collect(self) -> dict[str, str]:
        now = time.monotonic()
        self._latest = {r: v for r, v in self._latest.items() if now - v[0] <= METRICS_STALE_S}
        return {r: text for r, (_, text) in self._latest.items()}


@serve.deployment(
    name=DEPLOYMENT,
    max_ongoing_requests=_DEFAULTS["admission_budget"].default + PROBE_ROOM,
    max_queued_requests=1024,
    backpressure_config={"status_code": 429, "retry_after_s": 5},
    health_check_period_s=2.0,  # Ray marks a replica unhealthy after 3 failed checks: ~6 s after engine death
    health_check_timeout_s=30.0,
    graceful_shutdown_timeout_s=_DEFAULTS["shutdown_grace_s"].default,
    max_constructor_retry_count=3,  # an engine that cannot start fails the deploy in minutes, not after 20 tries
    ray_actor_options={"num_cpus": 1},  # the front end: tokenizing, rendering, HTTP (docs/deploy.md, sizing)
)
@serve.ingress()
class LibraJudge:
    """One replica: ``build_app`` with its own vLLM engine, its health mapped onto Ray's health check."""

    def __init__(self, serve_args: Sequence[str], settings: dict[str, Any] | None = None, metrics_hub=None):
        self.serve_args, self.overrides, self.hub = list(serve_args), dict(settings or {}), metrics_hub
        self.replica = serve.get_replica_context().replica_tag
        self.judge_app = None
        self._ready = False
        self._push_task: asyncio.Task | None = None

    async def __serve_build_asgi_app__(self):
        from service.app import build_app
        from service.engine.vllm_engine import open_vllm_engine
        from service.logs import setup_logging

        args, settings, judge = deploy_spec(self.serve_args, self.overrides)
        setup_logging(settings.log_level, settings.json_logs)
        self.judge_app = build_app(settings, lambda: open_vllm_engine(args), judge, on_engine_dead=self._engine_died)
        _serve_metrics_from(self.judge_app, self._all_metrics)
        if self.hub is not None:
            self._push_task = asyncio.create_task(self._push_metrics())
        return self.judge_app

    def _engine_died(self) -> None:
        # `libra-serve serve` exits here for its supervisor; under Ray the failing health check does the restart.
        log.error("replica %s: the judge engine died; Ray's health check fails and Ray replaces the replica",
                  self.replica)

    async def check_health(self) -> None:
        """Ray's replica health check: raising makes Ray replace the replica (3 failures in a row)."""
        serving = self.judge_app.state.serving if self.judge_app is not None else None
        if serving is None or serving.lifecycle is None:
            raise RuntimeError("the judge engine has not started")
        if serving.lifecycle.dead or serving.engine.errored:
            raise RuntimeError("the judge engine died")
        if not self._ready:  # the first check gates routing: the engine must have answered its probe
            try:
                serving.lifecycle.readiness()
            except (NotServing, EngineDead) as exc:  # not ready or draining (503 in the HTTP app): "not healthy"
                raise RuntimeError(f"not ready: {exc}") from None
            self._ready = True

    def _own_metrics(self) -> str:
        return self.judge_app.state.serving.metrics.render().decode()

    async def _push_metrics(self) -> None:
        while True:
            try:
                await self.hub.push.remote(self.replica, self._own_metrics())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - metrics must never take a replica down
                log.debug("metrics push failed: %s", exc)
            await asyncio.sleep(METRICS_PUSH_S)

    async def _all_metrics(self) -> bytes:
        texts = {self.replica: self._own_metrics()}
        if self.hub is not None:
            try:
                await self.hub.push.remote(self.replica, texts[self.replica])  # this replica's, fresh
                texts = await self.hub.collect.remote()
            except Exception as exc:  # noqa: BLE001 - LibraMetrics restarting: this replica's own series
                log.warning("LibraMetrics unreachable (%s); /metrics has this replica's series only", exc)
        return merge_expositions(texts)

    async def __del__(self):
        if getattr(self, "_push_task", None) is not None:
            self._push_task.cancel()
        if getattr(self, "hub", None) is not None:
            with contextlib.suppress(Exception):
                await self.hub.forget.remote(self.replica)


def app_builder(args: dict[str, Any]) -> serve.Application:
    """The Serve config's ``import_path`` (``service.ray_serve:app_builder``): checks ``args`` as
    ``libra-serve serve`` would, then binds the replicas and the metrics hub. Options in the config's
    ``deployments:`` (replicas, autoscaling, resources) override the defaults set here."""
    try:
        config = LibraArgs.model_validate(args or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        raise DeployError(f"args.{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    settings = deploy_spec(config.argv(), config.settings).settings
    judge = LibraJudge.options(max_ongoing_requests=settings.admission_budget + PROBE_ROOM)
    return judge.bind(config.argv(), config.settings, MetricsHub.bind())


# -- libra-serve ray: the application on a local Ray ------------------------------------------------------


def ray_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="libra-serve ray", allow_abbrev=False,
        description="Serve the judge as a Ray Serve application (replicas of libra-serve serve's app). Flags not "
                    "listed here are libra-serve serve's (--model, --judge, vLLM engine flags).")
    parser.add_argument("--host", default="127.0.0.1", help="Ray Serve's HTTP proxy address")
    parser.add_argument("--port", type=int, default=8000, help="Ray Serve's HTTP proxy port")
    parser.add_argument("--num-replicas", type=int, default=1, help="fixed number of replicas")
    parser.add_argument("--min-replicas", type=int, help="autoscale from this many replicas (with --max-replicas)")
    parser.add_argument("--max-replicas", type=int, help="autoscale up to this many replicas")
    parser.add_argument("--target-ongoing-requests", type=float, default=8,
                        help="autoscaling: requests in flight per replica the autoscaler aims for")
    parser.add_argument("--replica-cpus", type=float, default=1.0, help="CPUs Ray reserves per replica")
    parser.add_argument("--replica-gpus", type=float, help="GPUs per replica (default: 0 on the CPU engine, else 1)")
    parser.add_argument("--address", help="an existing Ray cluster (default: RAY_ADDRESS, else a new local one)")
    return parser


def _deployment_options(opts: Namespace, settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {"max_ongoing_requests": settings.admission_budget + PROBE_ROOM,
                               "ray_actor_options": {"num_cpus": opts.replica_cpus, "num_gpus": opts.replica_gpus}}
    if opts.max_replicas:
        options["autoscaling_config"] = {"min_replicas": opts.min_replicas or 1, "max_replicas": opts.max_replicas,
                                         "target_ongoing_requests": opts.target_ongoing_requests}
    else:
        options["num_replicas"] = opts.num_replicas
    return options


def _check_resources(resources: dict[str, float], options: dict[str, Any]) -> str | None:
    """Why the cluster cannot place the replicas Ray must start first, or None."""
    replicas = options.get("num_replicas") or options["autoscaling_config"]["min_replicas"]
    actor = options["ray_actor_options"]
    for name, per in (("GPU", actor["num_gpus"]), ("CPU", actor["num_cpus"])):
        have = resources.get(name, 0.0)
        if per and replicas * per > have:
            return (f"{replicas} replica(s) x {per:g} {name} need {replicas * per:g} {name}s; the Ray cluster has "
                    f"{have:g} (`ray status` lists its resources; --replica-{name.lower()}s sets the need per replica)")
    return None


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def run_local(argv: Sequence[str]) -> None:
    """``libra-serve ray``: deploy on a local (or given) Ray cluster and serve until Ctrl-C or SIGTERM. A Ray
    it started goes away with it; on an existing cluster (``--address``, RAY_ADDRESS) only its application does."""
    import os

    import ray

    from service.engine.vllm_engine import is_cpu_platform

    opts, serve_args = ray_parser().parse_known_args(list(argv))
    try:
        _, settings, judge = deploy_spec(serve_args)
    except DeployError as exc:
        sys.exit(str(exc))
    if opts.replica_gpus is None:
        opts.replica_gpus = 0.0 if is_cpu_platform() else 1.0
    options = _deployment_options(opts, settings)
    existing = bool(opts.address or os.environ.get("RAY_ADDRESS"))
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops as Ctrl-C does, even while deploying
    deployed = False
    ray.init(address=opts.address, log_to_driver=True, logging_level=logging.WARNING)
    # Again: ray.init installs Ray's own C++ SIGTERM handler in front of ours, and with it a shutdown racing ours
    # sometimes ends the process in an abort (exit -6) instead of a drained stop.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        problem = _check_resources(ray.cluster_resources(), options)
        if problem:
            sys.exit(f"libra-serve ray: {problem}")
        serve.start(http_options={"host": opts.host, "port": opts.port})
        deployed = True
        app = LibraJudge.options(**options).bind(serve_args, {}, MetricsHub.bind())
        try:
            serve.run(app, name=APP_NAME, route_prefix="/")
        except RuntimeError as exc:
            lines = [line for line in str(exc).splitlines() if line.strip()]
            sys.exit(f"libra-serve ray: the application failed to deploy: {lines[-1] if lines else exc} "
                     "(the replicas' logs: /tmp/ray/session_latest/logs/serve/)")
        replicas = options.get("num_replicas") or f"{opts.min_replicas or 1}-{opts.max_replicas} autoscaled"
        print(f"libra-serve ray: judge {judge!r} on http://{opts.host}:{opts.port} ({replicas} replica(s)); "
              "Ctrl-C stops", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        if deployed:  # the replicas drain (graceful_shutdown_timeout_s) and stop their engines
            with contextlib.suppress(Exception):
                if existing:
                    serve.delete(APP_NAME)
                else:
                    serve.shutdown()
        ray.shutdown()
