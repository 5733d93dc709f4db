"""Every metric the Grafana dashboard queries is one the service really exports: scrape /metrics of the
live service (real vLLM engine, nano judge) after it has scored, and cross-check names and labels."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration

DASHBOARD = Path(__file__).resolve().parents[2] / "docker" / "grafana" / "dashboards" / "libra.json"
METRIC = re.compile(r"\b(libra_[a-z0-9_]+|vllm:[a-z0-9_:]+)")


def exported(url: str) -> dict[str, set[str]]:
    """Sample name -> label names, as the exposition has them (histograms as _bucket/_sum/_count)."""
    labels: dict[str, set[str]] = defaultdict(set)
    for family in text_string_to_metric_families(httpx.get(url + "/metrics").text):
        for sample in family.samples:
            labels[sample.name] |= set(sample.labels)
    return labels


# Labels a scrape adds, never in the service's own exposition: Prometheus' target labels, and the replica
# label of Ray Serve's merged /metrics (tests/ray checks that one).
SCRAPE_LABELS = {"instance", "job", "replica"}


def test_every_dashboard_query_names_an_exported_metric_and_label(live_server):
    items = [{"question": "What is 40 + 2?", "response": "42."}, {"question": "What is 40 + 2?", "response": "43."}]
    assert httpx.post(live_server.url_for("score"), json={"items": items}, timeout=120).status_code == 200
    metrics = exported(live_server.url)
    queries = [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]]
    checked = 0
    for expr in queries:
        names = METRIC.findall(expr)
        assert names or re.search(r"\bup\{", expr), f"no service or engine metric in {expr!r}"
        grouped = {x.strip() for group in re.findall(r"by \(([^)]*)\)", expr) for x in group.split(",")}
        for name in names:
            assert name in metrics, f"the dashboard queries {name}, which /metrics does not export ({expr!r})"
            # A selector's matchers are its own metric's; a by () grouping applies to every metric of the query.
            matched = {m for sel in re.findall(re.escape(name) + r"\{([^}]*)\}", expr)
                       for m in re.findall(r"(\w+)\s*[=!~]", sel)}
            for label in (grouped | matched) - SCRAPE_LABELS:
                assert label in metrics[name], f"{name} has no label {label!r} ({expr!r})"
            checked += 1
    assert checked >= 20


def test_the_container_health_check_follows_libra_port(live_server):
    import os
    import subprocess
    import sys

    from libra_eval.server_process import free_port

    def check(port: int, *args: str) -> int:
        env = {**os.environ, "LIBRA_PORT": str(port)}
        return subprocess.run([sys.executable, "-m", "service.healthcheck", *args], env=env,
                              capture_output=True, timeout=30).returncode

    assert check(live_server.port) == 0 and check(live_server.port, "--ready") == 0
    assert check(free_port()) == 1
