"""Unit-test fixtures: the app and the scorer on the documented FakeEngine."""

from __future__ import annotations

import pytest

from libra_client import env as libra_env
from service.engine.fake import FakeEngine
from tests.helpers import perfect_nano_judge


@pytest.fixture
def engine(nano_tokenizer):
    """A fake engine that judges nano items correctly, with the nano judge's context length."""
    return FakeEngine(nano_tokenizer, perfect_nano_judge, model_name="fake-nano", max_model_len=1024)


@pytest.fixture
def fresh_env(monkeypatch):
    """No client settings from the environment, and no shared client left by an earlier test's adapters."""
    for name in ("LIBRA_URL", "LIBRA_API_KEY", "LIBRA_JUDGE", "LIBRA_MODE", "LIBRA_REWARD_MODE",
                 "LIBRA_CLIENT_TIMEOUT_S", "LIBRA_CHUNK_SIZE", "LIBRA_MAX_CONCURRENCY", "LIBRA_MAX_THINKING_TOKENS",
                 "LIBRA_MAX_RETRIES", "LIBRA_POLICY", "LIBRA_FAILURE_REWARD", "LIBRA_TRUST_RULE"):
        monkeypatch.delenv(name, raising=False)
    for client in list(libra_env._clients.values()):  # clients an earlier test's adapters left in this process
        client.close()
    libra_env._clients.clear()
    yield monkeypatch
    for client in list(libra_env._clients.values()):
        client.close()
    libra_env._clients.clear()
