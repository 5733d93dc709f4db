"""Probability rewards and priorities on the real engine (vLLM's own logprobs and scheduler)."""

from __future__ import annotations

import random

import httpx
import pytest

from nano import world

pytestmark = pytest.mark.integration


def score(server, items, **options):
    resp = httpx.post(server.url_for("score"), json={"items": items, **options}, timeout=300)
    assert resp.status_code == 200, resp.text
    return resp.json()["results"]


def test_prob_rewards_follow_the_labels_on_the_nano_judge(live_server):
    rng = random.Random(41)
    drawn = [world.make_item(rng, "eval", correct=i % 2 == 0) for i in range(40)]
    items = [{"question": it.question, "response": it.response} for it in drawn]
    results = score(live_server, items, reward_mode="prob", cache=False)
    assert all(r["status"] == "ok" and 0.0 <= r["reward"] <= 1.0 for r in results)
    assert all(r["reward"] == pytest.approx(r["verdict_prob"]) for r in results)  # labels 1/0: the same
    right = [r["verdict_prob"] for r, it in zip(results, drawn, strict=True) if it.label == 1]
    wrong = [r["verdict_prob"] for r, it in zip(results, drawn, strict=True) if it.label == 0]
    assert min(right) > max(wrong)  # the held-out-like items are separated (AUC 1 here)
    verdicts = score(live_server, items[:6], cache=False)
    assert all(r["verdict_prob"] is None for r in verdicts)  # verdict mode: natural verdicts unprobed
    probed = score(live_server, items[:6], verdict_prob=True, cache=False)
    assert [r["reward"] for r in probed] == [r["reward"] for r in verdicts]
    assert all(abs(r["verdict_prob"] - r["reward"]) < 0.5 for r in probed)


def test_forced_verdicts_carry_their_probability_for_free(random_judge_server):
    items = [{"question": f"What is {i} + 3?", "response": f"{i} + 3 = {i + 3}."} for i in range(8)]
    results = score(random_judge_server, items, max_thinking_tokens=8, cache=False)
    forced = [r for r in results if r["status"] == "forced"]
    assert forced and all(0.0 <= r["verdict_prob"] <= 1.0 for r in forced)
    # (a random model's mass spreads over several spellings of a label, so the greedy choice and the
    # summed probability need not agree item by item; prob mode pays the probability)
    paid = score(random_judge_server, items, max_thinking_tokens=8, cache=False, reward_mode="prob")
    assert all(r["reward"] == pytest.approx(r["verdict_prob"]) for r in paid if r["status"] == "forced")


def test_prob_is_refused_for_a_numeric_judge(live_server):
    resp = httpx.post(live_server.url_for("score"), json={"judge": "j1-pointwise", "reward_mode": "prob",
                                                          "items": [{"question": "q", "response": "1"}]})
    assert resp.status_code == 422 and "j1-pointwise" in resp.json()["error"]["message"]


def test_priorities_reach_vllms_priority_scheduler(random_judge_server, live_server):
    assert httpx.get(random_judge_server.url_for("limits")).json()["scheduling_policy"] == "priority"
    assert httpx.get(live_server.url_for("limits")).json()["scheduling_policy"] == "fcfs"
    items = [{"question": f"What is {i} + 4?", "response": f"{i} + 4 = {i + 4}."} for i in range(6)]
    for server in (random_judge_server, live_server):  # accepted (and used, or ignored under fcfs)
        results = score(server, items, priority=-3, max_thinking_tokens=8, cache=False)
        assert all(r["status"] in ("ok", "forced") for r in results)
