"""Real services for the session: ``libra-serve`` as a child process on the real vLLM CPU engine.

``live_server`` (tests/conftest.py: the contract tests share it) runs the bundled nano judge; the engine
starts once per session. ``random_judge_server`` runs a random-weight model with the nano tokenizer, for the
paths where a judge that never gives a verdict on its own is the point (forced verdicts).
"""

from __future__ import annotations

import pytest

from libra_eval.server_process import ServerProcess
from tests.helpers import QUICK_START


@pytest.fixture(scope="session")
def random_judge_server(tmp_path_factory):
    from nano.random_model import save_nano_random

    path = save_nano_random(tmp_path_factory.mktemp("random-judge"))
    log = path / "libra-serve.log"
    # Scheduled by priority (vLLM's --scheduling-policy priority): the priority path runs on a real engine
    # without a server of its own.
    with ServerProcess(["--model", str(path), "--judge", "nano", "--dtype", "float32", "--scheduling-policy",
                        "priority", *QUICK_START], log_path=log) as server:
        yield server
