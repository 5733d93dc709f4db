"""``libra-serve``: the command line.

    libra-serve [serve] [--host H] [--port P] [vLLM engine flags]    serve a judge over HTTP
    libra-serve bench DATA.jsonl --out DIR [--url URL | --serve]      assess a judge on Libra Bench
    libra-serve label DATA.jsonl --out DIR [--url URL | --serve]      rewards, DPO pairs, best-of-N
    libra-serve traces DATA.jsonl --out DIR --samples K               thinking traces as SFT data
    libra-serve ray [--num-replicas N] [serve's flags]                replicas on Ray Serve (service/ray_serve.py)
    libra-serve --version                                             libra-serve's and vLLM's versions

Bare ``libra-serve`` means ``serve``. Every flag vLLM's engine takes (``--model``, ``--max-model-len``,
``--tensor-parallel-size``, ``--dtype``, ...) passes through unchanged; ``--model`` defaults to the
bundled nano judge so the default path needs no download.

This module dispatches and runs uvicorn; serve's flags and what they decide are ``service/launch.py``'s,
shared with Ray's launcher. Nothing imports this module: it is run (the ``libra-serve`` script, ``-m``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from service.config import Settings

SUBCOMMANDS = ("serve", "bench", "label", "traces", "ray")


class _Server:
    """uvicorn.Server that drains on SIGTERM and can be stopped when the engine dies."""

    def __init__(self, app, settings: Settings):
        import uvicorn

        class Server(uvicorn.Server):
            def handle_exit(self, sig, frame):  # SIGTERM/SIGINT: refuse new work, finish in-flight
                lifecycle = app.state.serving.lifecycle
                if lifecycle is not None:
                    lifecycle.draining = True
                super().handle_exit(sig, frame)
                # uvicorn re-raises the signal after shutdown (exit status -15); a drained shutdown
                # is a clean one, so the process exits 0 instead.
                self._captured_signals.clear()

        config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=settings.log_level.lower(),
                                timeout_graceful_shutdown=int(settings.shutdown_grace_s), log_config=None)
        self.server = Server(config)
        self.engine_died = False

    def stop_for_dead_engine(self) -> None:
        self.engine_died = True
        self.server.should_exit = True

    def run(self) -> int:
        self.server.run()
        return 1 if self.engine_died else 0


def serve(argv: Sequence[str]) -> None:
    from service.app import build_app
    from service.engine.vllm_engine import open_vllm_engine
    from service.launch import ModelKindError, check_model_kind, resolve
    from service.logs import setup_logging

    # First from the environment alone: parsing the flags imports vLLM, which logs as it loads, and with
    # JSON logs on those lines must be JSON too. Again once the flags (--log-level) are known.
    early = Settings()
    setup_logging(early.log_level, early.json_logs)
    spec = resolve(argv)
    try:
        check_model_kind(spec)
    except ModelKindError as exc:
        sys.exit(f"libra-serve: {exc}")
    args, settings, judge = spec
    setup_logging(settings.log_level, settings.json_logs, vllm_level=getattr(args, "log_level", None))
    if settings.host not in ("127.0.0.1", "localhost", "::1") and not settings.api_key_list():
        logging.getLogger("libra").warning(
            "binding %s without API keys: anyone who can reach this port can use the judge "
            "(set LIBRA_API_KEYS or LIBRA_API_KEYS_FILE)", settings.host)
    holder: dict = {}
    app = build_app(settings, lambda: open_vllm_engine(args), judge,
                    on_engine_dead=lambda: holder["server"].stop_for_dead_engine())
    holder["server"] = server = _Server(app, settings)
    code = server.run()
    if code:
        logging.getLogger("libra").error("exiting with status %d: the judge engine died", code)
    sys.exit(code)


def run_ray(argv: Sequence[str]) -> None:
    """``libra-serve ray``: the Ray Serve application on a local Ray. Ray is an extra: without it, one line."""
    try:
        import ray.serve  # noqa: F401
    except ImportError as exc:
        sys.exit(f"libra-serve ray: Ray Serve is not installed ({exc}); "
                 "install it with: pip install 'libra-serve[ray]'")
    from service.ray_serve import run_local

    run_local(argv)


def print_version() -> None:
    """``libra-serve --version``: read from package metadata, so it answers without importing vLLM or
    starting an engine."""
    from service.metrics import versions

    found = versions()
    print(f"libra-serve {found['version'] or 'unknown (not installed)'}, "
          f"vllm {found['vllm_version'] or 'not installed'}")


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["--version"], ["-V"]):
        print_version()
        return
    command = "serve"
    if argv and argv[0] in SUBCOMMANDS:
        command, argv = argv[0], argv[1:]
    if command == "serve":
        serve(argv)
    elif command == "ray":
        run_ray(argv)
    else:
        from libra_eval.cli import main as offline_main

        offline_main(command, argv)


if __name__ == "__main__":
    main()
