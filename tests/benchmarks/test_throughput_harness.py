"""The side-by-side benchmark runs end to end (small): the raw engine, the service and vllm serve + an
OpenAI client, on the same items with greedy sampling. Speed is for the benchmark to print; what a
test can hold it to is that the three stacks judged the same items the same way.

Three engine starts of its own, so it is a tier apart: ``make throughput-check`` (LIBRA_BENCH_TESTS=1), which
CI runs after ``make test``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.skipif(
    os.environ.get("LIBRA_BENCH_TESTS") != "1", reason="three engine starts of its own: make throughput-check")]

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_harness_runs_all_three_stacks(tmp_path):
    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, str(ROOT / "loadtest" / "throughput.py"), "--items", "48", "--rounds", "1",
                          # eager engines: the check is that the stacks agree, not their speed (make throughput)
                          "--engine-args", "--max-num-seqs 128 --max-model-len 1024 --enforce-eager",
                          "--out", str(out),
                          "--logs", str(tmp_path)], capture_output=True, text=True, timeout=2400, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert {(r["system"], r["workload"]) for r in result["rows"]} == {
        (s, w) for s in ("raw", "service", "vllm-serve") for w in ("unique", "rl")}
    assert set(result["ratios"]) == {"b/a unique", "b/a rl", "b/c unique", "b/c rl"}
    assert all(r["items"] == 48 and r["items_per_s"] > 0 for r in result["rows"])
    # The service renders the same token ids the raw engine got: greedy verdicts are identical.
    assert result["verdicts_same_as_raw"]["service unique"] == 1.0
    assert result["verdicts_same_as_raw"]["service rl"] == 1.0
    assert result["verdicts_same_as_raw"]["vllm-serve unique"] >= 0.9
    assert "| service | rl |" in run.stdout
