"""What a launch of the judge decides, one floor below every launcher.

``libra-serve serve`` (cli.py), the Ray Serve application (ray_serve.py) and the throughput harness all
start the same app from the same flags. The decisions that turn those flags into a server live here, once:

- ``serve_parser``: ``libra-serve serve``'s flags (--host, --port, --judge, --judges-dir) beside every vLLM
  engine flag, with --model defaulting to the bundled nano judge;
- ``parse_serve_args``: the command line after ``LIBRA_VLLM_ARGS``;
- ``ServeSpec.from_args`` / ``resolve``: the service's log level, its ``Settings``, the default judge and the
  nano judge's float32 dtype, as one ``ServeSpec``.

A launcher adds only what is its own: uvicorn and the bind warning (cli.py), Ray's deploy-time checks and
replicas (ray_serve.py). Nothing here starts an engine or builds the app.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from service.config import NANO_JUDGE_PATH, Settings


def serve_parser() -> argparse.ArgumentParser:
    from service.engine.vllm_engine import add_engine_args, engine_parser_class

    settings = Settings()
    parser = engine_parser_class()(prog="libra-serve serve", description="Serve a thinking judge over HTTP.")
    group = parser.add_argument_group("Libra Serve")
    group.add_argument("--host", default=settings.host, help="bind address (env LIBRA_HOST)")
    group.add_argument("--port", type=int, default=settings.port, help="port (env LIBRA_PORT)")
    group.add_argument("--judge", default=settings.judge,
                       help="default judge profile (env LIBRA_JUDGE); nano for the bundled model, else libra")
    group.add_argument("--judges-dir", default=settings.judges_dir, help="extra profile directory")
    add_engine_args(parser)
    parser.set_defaults(model=settings.model or str(NANO_JUDGE_PATH), disable_log_stats=False)
    return parser


def parse_serve_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line, after ``LIBRA_VLLM_ARGS`` (so flags on the command line override it)."""
    return serve_parser().parse_args(shlex.split(Settings().vllm_args) + list(argv))


class ServeSpec(NamedTuple):
    """Everything a launcher needs to build the app: ``args`` go to ``open_vllm_engine``, ``settings`` and
    ``judge`` to ``build_app``. A tuple, so ``args, settings, judge = spec`` reads as before."""

    args: argparse.Namespace
    settings: Settings
    judge: str

    @classmethod
    def from_args(cls, args: argparse.Namespace, overrides: Mapping[str, Any] | None = None) -> ServeSpec:
        """The decisions on parsed flags. ``overrides`` are Settings fields from a launcher that has no
        environment of its own to set (a Serve config's ``settings``); serve's flags win over them. Raises
        pydantic's ValidationError for a bad setting. Fixes ``args.dtype`` in place for the nano judge."""
        overrides = dict(overrides or {})
        # --log-level is vLLM's own flag; it sets the service's level too (else the override, else LIBRA_LOG_LEVEL).
        level = getattr(args, "log_level", None) or overrides.pop("log_level", None) or Settings().log_level
        settings = Settings(**{**overrides, "host": args.host, "port": args.port, "judge": args.judge,
                               "judges_dir": args.judges_dir, "log_level": level})
        judge = settings.resolve_judge(args.model)
        if settings.is_nano(args.model) and args.dtype == "auto":
            # vLLM would run the fp32 checkpoint in bf16 on CPU; a 1M-parameter model keeps its precision.
            args.dtype = "float32"
            args.served_model_name = args.served_model_name or ["nano-judge"]
        return cls(args, settings, judge)


def resolve(argv: Sequence[str], overrides: Mapping[str, Any] | None = None) -> ServeSpec:
    """``libra-serve serve``'s flags (after ``LIBRA_VLLM_ARGS``) as one ServeSpec; a bad flag exits as argparse does."""
    return ServeSpec.from_args(parse_serve_args(argv), overrides)
