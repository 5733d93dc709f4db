"""Hybrid rewards on the real service: only the items math-verify cannot settle reach the engine."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import scrape

pytestmark = pytest.mark.integration


def test_hybrid_sends_only_unverifiable_items_to_the_engine(live_server):
    items = [
        {"question": "What is 111 + 222?", "response": "111 + 222 = 333.", "reference": "333"},
        {"question": "What is 111 + 223?", "response": "111 + 223 = 335.", "reference": "334"},
        {"question": "What is 5 + 5?", "response": "The answer is \\boxed{\\frac{20}{2}}", "reference": "10"},
        {"question": "What is 123 + 456?", "response": "123 + 456 = 579."},  # no reference
        # Nothing math-verify can extract from the response: inconclusive, so the judge decides.
        {"question": "What is 300 - 1?", "response": "It is two hundred ninety-nine.", "reference": "299"},
    ]
    before = scrape(live_server, "libra_engine_requests_total")
    by_source = {s: scrape(live_server, "libra_items_by_source_total", {"source": s}) for s in ("judge", "verify")}
    # (policy answer = none: the nano profile's answer check would refuse the number-less last item first)
    resp = httpx.post(live_server.url_for("score"), json={"items": items, "mode": "hybrid", "cache": False,
                                                          "policy": {"answer": "none"}}, timeout=120)
    assert resp.status_code == 200
    results = resp.json()["results"]
    assert [r["source"] for r in results] == ["verify", "verify", "verify", "judge", "judge"]
    assert [r["reward"] for r in results[:4]] == [1.0, 0.0, 1.0, 1.0]
    assert results[4]["verify"]["status"] == "inconclusive"
    assert scrape(live_server, "libra_engine_requests_total") - before == 2
    assert scrape(live_server, "libra_items_by_source_total", {"source": "verify"}) - by_source["verify"] == 3
    assert scrape(live_server, "libra_items_by_source_total", {"source": "judge"}) - by_source["judge"] == 2


def test_both_reports_agreement_on_the_real_judge(live_server):
    items = [{"question": "What is 347 + 58?", "response": "347 + 58 = 405.", "reference": "405"},
             {"question": "What is 347 + 58?", "response": "347 + 58 = 415.", "reference": "405"}]
    results = httpx.post(live_server.url_for("score"), json={"items": items, "mode": "both"}, timeout=120).json()
    assert [(r["source"], r["verdict"], r["verify"]["status"], r["verify_agrees"]) for r in results["results"]] == [
        ("judge", "correct", "correct", True), ("judge", "incorrect", "incorrect", True)]
