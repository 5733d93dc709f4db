"""Hybrid rewards on the real service: math-verify first, the judge for what it may not decide (cascade.py)."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.helpers import scrape

pytestmark = pytest.mark.integration


def test_hybrid_pays_what_the_rule_accepts_and_judges_the_rest(live_server):
    items = [
        {"question": "What is 111 + 222?", "response": "111 + 222 = 333.", "reference": "333"},
        {"question": "What is 111 + 223?", "response": "111 + 223 = 335.", "reference": "334"},
        {"question": "What is 5 + 5?", "response": "The answer is \\boxed{\\frac{20}{2}}", "reference": "10"},
        {"question": "What is 123 + 456?", "response": "123 + 456 = 579."},  # no reference
        # Nothing math-verify can extract from the response: inconclusive, so the judge decides.
        {"question": "What is 300 - 1?", "response": "It is two hundred ninety-nine.", "reference": "299"},
        # A reference in words: math-verify rejects the right 405; the judge pays it.
        {"question": "What is 347 + 58?", "response": "347 + 58 = 405.", "reference": "four hundred five"},
    ]
    routes = ("rule_correct", "rule_incorrect", "judge_rule_incorrect", "judge_rule_inconclusive", "judge_no_reference")
    before = scrape(live_server, "libra_engine_requests_total")
    by_route = {r: scrape(live_server, "libra_cascade_items_total", {"route": r}) for r in routes}
    # (policy answer = none: the nano profile's answer check would refuse the number-less item first)
    body = {"items": items, "mode": "hybrid", "cache": False, "policy": {"answer": "none"}}
    resp = httpx.post(live_server.url_for("score"), json=body, timeout=120)
    assert resp.status_code == 200
    results = resp.json()["results"]
    assert [r["route"] for r in results] == ["rule_correct", "judge_rule_incorrect", "rule_correct",
                                             "judge_no_reference", "judge_rule_inconclusive", "judge_rule_incorrect"]
    assert [r["source"] for r in results] == ["verify", "judge", "verify", "judge", "judge", "judge"]
    assert [r["reward"] for r in results[:4]] + [results[5]["reward"]] == [1.0, 0.0, 1.0, 1.0, 1.0]
    assert [r["verify_agrees"] for r in (results[1], results[5])] == [True, False]  # the judge overturned one
    assert results[4]["verify"]["status"] == "inconclusive"
    assert scrape(live_server, "libra_engine_requests_total") - before == 4
    assert {r: scrape(live_server, "libra_cascade_items_total", {"route": r}) - by_route[r] for r in routes} == {
        "rule_correct": 2, "rule_incorrect": 0, "judge_rule_incorrect": 2, "judge_rule_inconclusive": 1,
        "judge_no_reference": 1}
    # trust_rule conclusive: the rule's rejections stand, only what it cannot settle reaches the engine.
    before = scrape(live_server, "libra_engine_requests_total")
    results = httpx.post(live_server.url_for("score"), json={**body, "trust_rule": "conclusive"},
                         timeout=120).json()["results"]
    assert [r["source"] for r in results] == ["verify", "verify", "verify", "judge", "judge", "verify"]
    assert results[5]["reward"] == 0.0  # the right answer, unpaid
    assert scrape(live_server, "libra_engine_requests_total") - before == 2


def test_hybrid_streams_the_rules_results_first(live_server):
    items = [{"question": f"What is {a} + 58?", "response": f"{a} + 58 = {a + 58}.", "reference": "0"}
             for a in range(600, 604)] + [{"question": "What is 347 + 58?", "response": "347 + 58 = 405.",
                                           "reference": "405"}]
    with httpx.stream("POST", live_server.url_for("score"), timeout=120,
                      json={"items": items, "mode": "hybrid", "cache": False, "stream": True}) as resp:
        lines = [json.loads(line) for line in resp.iter_lines() if line]
    assert lines[0]["index"] == 4 and lines[0]["route"] == "rule_correct"  # before any judgment
    assert sorted(line["index"] for line in lines[:-1]) == [0, 1, 2, 3, 4] and lines[-1]["done"]
    assert {line["route"] for line in lines[1:-1]} == {"judge_rule_incorrect"}


def test_both_reports_agreement_on_the_real_judge(live_server):
    items = [{"question": "What is 347 + 58?", "response": "347 + 58 = 405.", "reference": "405"},
             {"question": "What is 347 + 58?", "response": "347 + 58 = 415.", "reference": "405"}]
    results = httpx.post(live_server.url_for("score"), json={"items": items, "mode": "both"}, timeout=120).json()
    assert [(r["source"], r["verdict"], r["verify"]["status"], r["verify_agrees"]) for r in results["results"]] == [
        ("judge", "correct", "correct", True), ("judge", "incorrect", "incorrect", True)]
