"""Shared fixtures. Unit tests use the FakeEngine; integration tests start the real service once.

Two tokenizer worlds: the nano judge's byte-level one (one token per byte) and the Qwen-vocabulary
world (``qwen_world``: Qwen's real BPE ranks and added tokens, our Qwen3-style chat template and a
seeded random Qwen3 model; what is Qwen's and what is ours: ``nano/qwen.py``), built once per session.
"""

from __future__ import annotations

import pytest

from nano.tokenizer import build_tokenizer


@pytest.fixture(scope="session")
def nano_tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="session")
def qwen_world(tmp_path_factory):
    """A directory with the Qwen-vocabulary tokenizer and a random 2-layer Qwen3 model (~40 MB, ~7 s)."""
    from nano.random_model import build

    return build("tiny", tmp_path_factory.mktemp("qwen-world"))


@pytest.fixture(scope="session")
def qwen_tokenizer(qwen_world):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(qwen_world)
