"""Rubrics where the judge's verdicts mean something: the bundled nano judge on the real vLLM engine, as the
``nano-rubric`` grader, whose criteria are sums the response's final answer must answer. Each component's
verdict is checked against the truth, and each item's reward against the rule's aggregate of the true values,
through /score, OpenRLHF's /get_reward (the rubric in the label) and NeMo Gym's /verify. (The mechanics on
Qwen's vocabulary: test_profiles_live.py; mixed verdicts within one item: the FakeEngine's test_rubric.py.)

The criteria are the item's own sum, phrased two ways: the nano judge reads the operands from the response's
working as much as from its question, so it decides only the sum the response works reliably (measured on
150 held-out responses, ``python -m nano.rubric_probe``: the sum asked 150/150; the same operands with the
other operation 124/150; the first operand ten higher 134/150: docs/rubrics.md)."""

from __future__ import annotations

import random

import httpx
import pytest

from nano import world
from service.judge.rubric import Criterion, aggregate
from tests.nemo_gym_calls import agent_verify, verify_request

pytestmark = pytest.mark.integration


def cases(seed: int = 28, n: int = 8) -> list[dict]:
    """Held-out items, half right, each with a rubric of its own sum phrased two ways: the answer (weight 3) and
    the same sum restated (weight 1, a veto)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        it = world.make_item(rng, "eval", correct=i % 2 == 0)
        phrasings = rng.sample(world.QUESTION_TEMPLATES, 2)
        rubric = [{"id": "answer", "text": phrasings[0].format(a=it.a, op=it.op, b=it.b), "weight": 3},
                  {"id": "restated", "text": phrasings[1].format(a=it.a, op=it.op, b=it.b), "weight": 1, "veto": True}]
        out.append({"question": it.question, "response": it.response, "rubric": rubric, "truth": [float(it.label)] * 2})
    return out


def expected(case: dict) -> float:
    criteria = [Criterion(c["text"], c["weight"], c.get("polarity"), c["id"], c.get("veto", False))
                for c in case["rubric"]]
    return aggregate(criteria, case["truth"], "weighted")


def test_the_nano_judge_decides_each_criterion_and_the_rule_combines_them(live_server):
    items = cases()
    r = httpx.post(live_server.url_for("score"), timeout=300, json={
        "judge": "nano-rubric", "cache": False,
        "items": [{k: it[k] for k in ("question", "response", "rubric")} for it in items]})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    for it, res in zip(items, results, strict=True):
        assert res["status"] == "ok", res
        assert [c["reward"] for c in res["components"]] == it["truth"], (it, res["components"])
        assert res["reward"] == pytest.approx(expected(it))
        assert res["usage"]["completion_tokens"] > 2 * 30  # two thinking judgments
    assert [res["reward"] for res in results] == [1.0, 0.0] * 4
    # With reward_mode prob each part is the judge's P(correct), and the reward the weighted rule over them
    r = httpx.post(live_server.url_for("score"), timeout=300, json={
        "judge": "nano-rubric", "reward_mode": "prob",
        "items": [{k: it[k] for k in ("question", "response", "rubric")} for it in items]})
    for it, res in zip(items, r.json()["results"], strict=True):
        probs = [c["reward"] for c in res["components"]]
        assert [round(p) for p in probs] == it["truth"] and all(0.0 < p < 1.0 for p in probs), res
        assert res["reward"] == pytest.approx(expected({**it, "truth": probs}))


def test_openrlhf_and_nemo_gym_get_the_same_rewards(live_server):
    items = cases(seed=29)
    body = {"query": [it["question"] + "\n" + it["response"] for it in items],
            "prompts": [it["question"] + "\n" for it in items], "labels": [it["rubric"] for it in items]}
    r = httpx.post(live_server.url_for("get_reward"), params={"judge": "nano-rubric"}, json=body, timeout=300)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["rewards"] == pytest.approx([expected(it) for it in items])
    assert got["extra_logs"]["rubric_veto_failed"] == [float(it["truth"][0] == 0.0) for it in items]
    assert got["extra_logs"]["rubric_met"] == [it["truth"][0] for it in items]
    it = items[1]
    answer = agent_verify(live_server.url, verify_request(it["question"], it["response"], rubric=it["rubric"],
                                                          judge="nano-rubric"))
    assert answer["reward"] == pytest.approx(expected(it)) and "_ng_failure_class" not in answer
    assert answer["reward_components"] == dict(zip(("answer", "restated"), it["truth"], strict=True))
