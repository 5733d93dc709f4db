"""The serve command line: engine flags from the environment for containers, the command line wins."""

from __future__ import annotations

from service.cli import parse_serve_args
from service.config import NANO_JUDGE_PATH


def test_model_and_engine_flags_from_the_environment(monkeypatch):
    monkeypatch.delenv("LIBRA_MODEL", raising=False)
    monkeypatch.delenv("LIBRA_VLLM_ARGS", raising=False)
    args = parse_serve_args([])
    assert args.model == str(NANO_JUDGE_PATH) and args.tensor_parallel_size == 1

    monkeypatch.setenv("LIBRA_MODEL", "/models/judge")
    monkeypatch.setenv("LIBRA_VLLM_ARGS",
                       "--tensor-parallel-size 2 --max-model-len 16384 --served-model-name 'my judge'")
    args = parse_serve_args([])
    assert args.model == "/models/judge"
    assert (args.tensor_parallel_size, args.max_model_len, args.served_model_name) == (2, 16384, ["my judge"])

    args = parse_serve_args(["--model", "/other", "--max-model-len", "8192"])
    assert args.model == "/other" and args.max_model_len == 8192 and args.tensor_parallel_size == 2


def test_libra_serve_ray_without_ray_is_one_clear_line():
    """The `ray` extra missing: `libra-serve ray` stops with one line naming the install, whether or not
    this venv has Ray (CI installs it for `make test-ray`): the import of ray is blocked here."""
    import subprocess
    import sys

    blocked = ("import sys; sys.modules['ray'] = None; "
               "from service.cli import main; main(['ray', '--num-replicas', '1'])")
    proc = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("libra-serve ray: Ray Serve is not installed")
    assert "pip install 'libra-serve[ray]'" in lines[0]
