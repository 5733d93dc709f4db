"""Unit-test fixtures: the app and the scorer on the documented FakeEngine."""

from __future__ import annotations

import pytest

from service.engine.fake import FakeEngine
from tests.helpers import perfect_nano_judge


@pytest.fixture
def engine(nano_tokenizer):
    """A fake engine that judges nano items correctly, with the nano judge's context length."""
    return FakeEngine(nano_tokenizer, perfect_nano_judge, model_name="fake-nano", max_model_len=1024)
