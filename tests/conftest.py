"""Shared fixtures. Unit tests use the FakeEngine; integration tests start the real service once.

Two tokenizer worlds: the nano judge's byte-level one (one token per byte) and the Qwen-vocabulary
world (``qwen_world``: Qwen's real BPE ranks and added tokens, our Qwen3-style chat template and a
seeded random Qwen3 model; what is Qwen's and what is ours: ``nano/qwen.py``), built once per session.
"""

from __future__ import annotations

import os

import pytest

from nano.tokenizer import build_tokenizer


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    """``libra-serve serve`` with the bundled nano judge on the real vLLM engine, once per session, for
    the integration and contract tests. ``LIBRA_TEST_URL`` points them at a server already running
    (started with the same flags) instead, to iterate on tests without waiting for an engine."""
    from libra_eval.server_process import ServerProcess

    if os.environ.get("LIBRA_TEST_URL"):
        yield ServerProcess.attached(os.environ["LIBRA_TEST_URL"])
        return
    log = tmp_path_factory.mktemp("server") / "libra-serve.log"
    # Engine flags pass straight through to vLLM.
    with ServerProcess(["--max-num-seqs", "128", "--max-model-len", "1024"], log_path=log) as server:
        yield server


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
