"""The client the adapters (verl, TRL) share, configured from the environment.

- ``LIBRA_URL``: the service address, comma-separated for several replicas (default http://127.0.0.1:8000).
- ``LIBRA_API_KEY``: the bearer key, if the server asks for one.
- ``LIBRA_CLIENT_TIMEOUT_S`` (900), ``LIBRA_CHUNK_SIZE`` (256), ``LIBRA_MAX_CONCURRENCY`` (8),
  ``LIBRA_MAX_RETRIES`` (8): the client's HTTP timeout per request, items per request, requests in
  flight per call, and retries of a failed request (with backoff: 8 ride out ~1-2 minutes of outage).
- Request options: ``LIBRA_JUDGE`` (profile), ``LIBRA_MODE`` (judge, verify, hybrid, both),
  ``LIBRA_TRUST_RULE`` (mode hybrid: correct or conclusive, which rule verdicts stand without the judge),
  ``LIBRA_REWARD_MODE`` (verdict or prob), ``LIBRA_MAX_THINKING_TOKENS`` (thinking budget per judgment),
  ``LIBRA_POLICY`` (the reward policy's overrides, a JSON object, e.g. ``{"forced": 0}``).

verl calls its reward function once per sample, TRL once per batch, both for the whole run: one client
per process (per set of settings) lets every call share the connection pool and the replicas'
cool-downs, where a client per call would open new connections and forget which replica just failed.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from libra_client.client import LibraClient

_clients: dict[tuple, LibraClient] = {}
_lock = threading.Lock()  # verl's naive manager may call from several threads at once


def _number(name: str, kind: type, default: float | int) -> Any:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a valid {kind.__name__}") from None


def client_settings() -> tuple[list[str], dict[str, Any], dict[str, Any]]:
    """The environment's base URLs, client keyword arguments and request options."""
    urls = [u.strip() for u in os.environ.get("LIBRA_URL", "http://127.0.0.1:8000").split(",") if u.strip()]
    kwargs = {"api_key": os.environ.get("LIBRA_API_KEY") or None,
              "timeout_s": _number("LIBRA_CLIENT_TIMEOUT_S", float, 900.0),
              "chunk_size": _number("LIBRA_CHUNK_SIZE", int, 256),
              "max_concurrency": _number("LIBRA_MAX_CONCURRENCY", int, 8),
              "max_retries": _number("LIBRA_MAX_RETRIES", int, 8)}
    options: dict[str, Any] = {"judge": os.environ["LIBRA_JUDGE"]} if os.environ.get("LIBRA_JUDGE") else {}
    if os.environ.get("LIBRA_MODE"):
        options["mode"] = os.environ["LIBRA_MODE"]
    if os.environ.get("LIBRA_TRUST_RULE"):  # correct | conclusive
        options["trust_rule"] = os.environ["LIBRA_TRUST_RULE"]
    if os.environ.get("LIBRA_REWARD_MODE"):  # verdict | prob
        options["reward_mode"] = os.environ["LIBRA_REWARD_MODE"]
    if os.environ.get("LIBRA_MAX_THINKING_TOKENS"):
        options["max_thinking_tokens"] = _number("LIBRA_MAX_THINKING_TOKENS", int, 0)
    if os.environ.get("LIBRA_POLICY"):
        try:
            options["policy"] = json.loads(os.environ["LIBRA_POLICY"])
        except ValueError:
            raise ValueError(f"LIBRA_POLICY={os.environ['LIBRA_POLICY']!r} is not a JSON object") from None
        if not isinstance(options["policy"], dict):
            raise ValueError(f"LIBRA_POLICY={os.environ['LIBRA_POLICY']!r} is not a JSON object")
    return urls, kwargs, options


def shared_client() -> tuple[LibraClient, dict[str, Any]]:
    """This process's client for the current settings, and the request options to send with each call.

    Keyed by the process id too: a client made before a fork (verl's and TRL's workers are often
    forked) has no loop thread in the child, so the child makes its own. Sync callers use
    ``client.score``, async ones ``await client.ascore`` (it runs on the client's own loop, so it works
    from whichever loop the trainer awaits it in).
    """
    urls, kwargs, options = client_settings()
    pid = os.getpid()
    key = (pid, tuple(urls), tuple(sorted(kwargs.items())))
    with _lock:
        for stale in [k for k in _clients if k[0] != pid]:
            del _clients[stale]  # the parent's; its finalizer knows not to touch the parent's thread
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = LibraClient(urls, **kwargs)
    return client, options


def criteria(rubric: Any) -> Any:
    """A data set's rubric as /score takes it: each criterion a plain dict without the null fields a columnar
    store (Arrow, Parquet) gives a row for another row's keys. Anything else goes as it is, for the server
    to refuse with its reason."""
    if not isinstance(rubric, list | tuple):
        return rubric
    return [{k: v for k, v in dict(c).items() if v is not None} if isinstance(c, dict) else c for c in rubric]
