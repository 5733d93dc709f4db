"""Logging setup: plain text by default, one JSON object per line with ``LIBRA_JSON_LOGS=true``.

The access log (``libra.access``) writes one line per request: request id, method, path, status,
duration, and for scoring requests the item count, judge and status mix.

vLLM configures its own ``vllm`` logger (a text handler on stdout, not propagating) each time an engine
is built, in this process and again in every process it starts (the engine core, workers), from a
``LoggingConfig`` built here and sent along. With JSON logs on, ``setup_logging`` writes a logging
``dictConfig`` that routes the ``vllm`` logger through ``JsonFormatter`` and points vLLM at it with
``VLLM_LOGGING_CONFIG_PATH``: vLLM applies it here and in each child, spawned or forked (the
environment is inherited and the config carries the path), so the engine core's lines are JSON as well.
An operator's own ``VLLM_LOGGING_CONFIG_PATH`` or ``VLLM_CONFIGURE_LOGGING=0`` is left alone.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import tempfile
import time

# Our config files are named so, which tells them from an operator's VLLM_LOGGING_CONFIG_PATH.
_VLLM_CONFIG_PREFIX = "libra-vllm-logging-"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
               "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        if record.processName != "MainProcess":  # vLLM's engine core, a verify worker: which process spoke
            out["process"] = record.processName
        out.update(getattr(record, "libra", {}))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "libra", None)
        if fields:
            line += " " + " ".join(f"{k}={json.dumps(v, separators=(',', ':'), default=str)}"
                                   for k, v in fields.items())
        return line


def setup_logging(level: str, json_logs: bool, vllm_level: str | None = None) -> None:
    """Configure this process's logging; safe to call again (the CLI does once it has read the flags).
    ``vllm_level``: the ``vllm`` logger's level with JSON logs on (vLLM's ``--log-level``), else vLLM's
    own default (``VLLM_LOGGING_LEVEL``, else INFO), as in text mode."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_logs else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Our access log carries the request id, so uvicorn's is silenced. Not with ``disabled``: vLLM's
    # dictConfig (disable_existing_loggers false) re-enables every logger it does not name, at engine start.
    access = logging.getLogger("uvicorn.access")
    access.handlers[:] = []
    access.propagate = False
    if json_logs:
        _route_vllm_logs(level, (vllm_level or os.environ.get("VLLM_LOGGING_LEVEL") or "INFO").upper())
    elif _ours(os.environ.get("VLLM_LOGGING_CONFIG_PATH")):
        del os.environ["VLLM_LOGGING_CONFIG_PATH"]  # text again (tests switch): vLLM's own format


def vllm_logging_config(level: str, vllm_level: str = "INFO") -> dict:
    """The ``dictConfig`` vLLM applies in each of its processes with JSON logs on: every record, the
    ``vllm`` logger's included, through ``JsonFormatter`` on stderr, as the server's own lines. The
    root logger is configured too, because in a spawned child nothing else configures it (libraries'
    warnings there would come out bare); in this process that replaces our root handler with its twin."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"libra_json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"libra_json": {"class": "logging.StreamHandler", "formatter": "libra_json",
                                    "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["libra_json"], "level": level.upper()},
        "loggers": {"vllm": {"handlers": [], "propagate": True, "level": vllm_level}},
    }


def _ours(path: str | None) -> bool:
    return bool(path) and os.path.basename(path).startswith(_VLLM_CONFIG_PREFIX)


def _route_vllm_logs(level: str, vllm_level: str) -> None:
    # Now, for records logged before vLLM next configures itself (or if it never does).
    vllm = logging.getLogger("vllm")
    vllm.handlers[:] = []
    vllm.propagate = True
    vllm.setLevel(vllm_level)
    current = os.environ.get("VLLM_LOGGING_CONFIG_PATH")
    if (current and not _ours(current)) or os.environ.get("VLLM_CONFIGURE_LOGGING") == "0":
        # The operator's choice; vLLM also refuses a config file with its configuration turned off.
        return
    # A file per process (its pid in the name), removed at exit: a shared one could be deleted under
    # another server still starting. The children read it while this process lives. A second call in
    # this process rewrites its own file; one inherited from a parent libra process is not ours to reuse.
    prefix = f"{_VLLM_CONFIG_PREFIX}{os.getpid()}-"
    if current and os.path.basename(current).startswith(prefix) and os.path.isfile(current):
        path = current
    else:
        fd, path = tempfile.mkstemp(prefix=prefix, suffix=".json")
        os.close(fd)
        atexit.register(_remove, path)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(vllm_logging_config(level, vllm_level), f)
    os.environ["VLLM_LOGGING_CONFIG_PATH"] = path


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
