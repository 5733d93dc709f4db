"""Adapters that let trainers call Libra Serve with no change to the trainer's code (verl, TRL).

Both read the service address from ``LIBRA_URL`` (comma-separated for several replicas; default
http://127.0.0.1:8000), the key from ``LIBRA_API_KEY``, the judge profile from ``LIBRA_JUDGE``, the
verification mode from ``LIBRA_MODE`` and the reward mode (``verdict`` or ``prob``) from
``LIBRA_REWARD_MODE``.
"""

from __future__ import annotations

import os
from typing import Any

from libra_client.client import AsyncLibraClient, LibraClient


def client_settings() -> tuple[list[str], dict[str, Any], dict[str, Any]]:
    urls = [u.strip() for u in os.environ.get("LIBRA_URL", "http://127.0.0.1:8000").split(",") if u.strip()]
    kwargs = {"api_key": os.environ.get("LIBRA_API_KEY") or None}
    options = {"judge": os.environ["LIBRA_JUDGE"]} if os.environ.get("LIBRA_JUDGE") else {}
    if os.environ.get("LIBRA_MODE"):
        options["mode"] = os.environ["LIBRA_MODE"]
    if os.environ.get("LIBRA_REWARD_MODE"):  # verdict | prob
        options["reward_mode"] = os.environ["LIBRA_REWARD_MODE"]
    return urls, kwargs, options


def sync_client() -> tuple[LibraClient, dict[str, Any]]:
    urls, kwargs, options = client_settings()
    return LibraClient(urls, **kwargs), options


def async_client() -> tuple[AsyncLibraClient, dict[str, Any]]:
    urls, kwargs, options = client_settings()
    return AsyncLibraClient(urls, **kwargs), options
