"""Shared fixtures. Unit tests use the FakeEngine; integration tests start the real service once."""

from __future__ import annotations

import pytest

from nano.tokenizer import build_tokenizer


@pytest.fixture(scope="session")
def nano_tokenizer():
    return build_tokenizer()
