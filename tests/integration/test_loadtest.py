"""``make loadtest`` as CI runs it: a 30-second locust smoke against the live service with the SLO gate,
its report, and the gate failing a run whose SLO cannot be met."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def loadtest(url: str, out: Path, run_time: str, *locust_flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "loadtest" / "run.py"), "--host", url, "--run-time", run_time,
                           "--users", "3", "--spawn-rate", "3", "--out", str(out), "--", *locust_flags],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_locust_smoke_meets_the_slo_and_writes_the_report(live_server, tmp_path):
    run = loadtest(live_server.url, tmp_path, "30s", "--max-batch", "64")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["requests"] > 0 and summary["failures"] == 0 and summary["items_scored"] > 0
    with open(tmp_path / "locust_stats.csv", newline="") as fh:
        names = {row["Name"] for row in csv.DictReader(fh)}
    assert any(n.startswith("/score grpo") for n in names), names
    assert (tmp_path / "locust.html").stat().st_size > 0
    assert (tmp_path / "throughput_latency.png").read_bytes()[:4] == b"\x89PNG"
    assert "SLO met" in run.stderr


def test_the_slo_gate_fails_a_run_that_breaks_it(live_server, tmp_path):
    # A run time shorter than one request: the requests in flight at the end are still finished and
    # counted ([tool.locust] stop-timeout), so the gate judges their p95 instead of "no request completed".
    run = loadtest(live_server.url, tmp_path, "1s", "--max-batch", "8", "--slo-p95-ms", "1")
    assert run.returncode == 1, run.stderr[-2000:]
    assert re.search(r"SLO breached: .*p95 \d+ ms > 1 ms", run.stderr), run.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["requests"] > 0 and summary["items_scored"] > 0, summary  # counted after the last request
