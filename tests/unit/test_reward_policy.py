"""The reward policy on the FakeEngine: the answer-presence check, repetition loops, truncated responses
whose final answer was cut, and what a forced verdict pays; per profile and per request."""

from __future__ import annotations

import dataclasses

import pytest

from service.engine.fake import FakeEngine
from service.judge.policy import RewardPolicy, answer_span, repetition
from service.judge.profiles import ProfileError, load_profile, parse_profile
from service.judge.scorer import Scorer
from service.judge.types import ItemStatus, JudgeOptions, ScoreItem
from tests.helpers import make_client, perfect_nano_judge, working

NANO = load_profile("nano")
Q = "What is 12 + 30?"


def scorer_for(tokenizer, reply=perfect_nano_judge, max_model_len=1024):
    engine = FakeEngine(tokenizer, reply, max_model_len=max_model_len)
    return Scorer(engine, group_priming=False), engine


@pytest.mark.parametrize("text, rule, found", [
    ("12 + 30 = 42.", "math", "42"),
    ("So the result is \\boxed{x^2 + 1}. Then 7 more words.", "math", "x^2 + 1"),  # the boxed answer first
    ("Final Answer: Paris", "final_answer", "Paris"),
    ("12 + 30 = 42.", "final_answer", None),  # a bare number is not a final_answer-style answer
    ("Thought process:", "math", None), (":", "math", None), ("Solution", "math", None),
    ("Answer: ...", "math", None),  # a marker with nothing word-like after it
    ("解", "math", None), ("", "math", None), ("\\boxed{}", "math", None),
])
def test_answer_span(text, rule, found):
    span = answer_span(text, rule)
    assert (None if span is None else text[span[0]:span[1]]) == found


def test_repetition_ratio_separates_loops_from_working():
    assert repetition("42 " * 5000) > 100 and repetition("1" * 199_999) > 500
    assert repetition(working(400)) < 5 and repetition("short " * 10) == 1.0  # under 256 characters: not judged


async def test_the_answer_check_refuses_master_keys_without_the_engine(nano_tokenizer):
    scorer, engine = scorer_for(nano_tokenizer)
    keys = [":", ".", " ", "Thought process:", "Let's solve this problem step by step.", "Solution", "かいせつ"]
    results = await scorer.score([ScoreItem(Q, k) for k in keys] + [ScoreItem(Q, "12 + 30 = 42.")],
                                 JudgeOptions.from_profile(NANO))
    assert [r.judgment.status for r in results[:-1]] == [ItemStatus.no_answer] * len(keys)
    assert all(r.judgment.reward is None and "no final answer" in r.judgment.message for r in results[:-1])
    assert results[-1].judgment.reward == 1.0 and engine.judge_calls() == 1


async def test_a_repetition_loop_is_degenerate(nano_tokenizer):
    scorer, engine = scorer_for(nano_tokenizer)
    results = await scorer.score([ScoreItem(Q, "42 " * 5000), ScoreItem(Q, "1" * 199_999)],
                                 JudgeOptions.from_profile(NANO))
    assert [r.judgment.status for r in results] == [ItemStatus.degenerate] * 2
    assert "compresses" in results[0].judgment.message and engine.calls == []
    off = JudgeOptions.from_profile(NANO, policy=RewardPolicy(answer="math", max_repetition=0))
    [r] = await scorer.score([ScoreItem(Q, "42 " * 300)], off)
    assert r.judgment.status == ItemStatus.ok  # the check is off: the judge decides


@pytest.mark.parametrize("mode, judged", [("head", False), ("tail", True), ("middle", True)])
async def test_a_truncated_response_is_judged_only_if_its_final_answer_is_seen(nano_tokenizer, mode, judged):
    scorer, engine = scorer_for(nano_tokenizer, max_model_len=600)
    profile = dataclasses.replace(NANO, truncate=mode)
    response = "Start. " + working(40) + "\nSo 12 + 30 = 42."
    [r] = await scorer.score([ScoreItem(Q, response)], JudgeOptions.from_profile(profile))
    assert r.judgment.truncated_input
    if judged:
        assert r.judgment.status == ItemStatus.ok and engine.judge_calls() == 1
    else:
        assert r.judgment.status == ItemStatus.too_long and "final answer was cut" in r.judgment.message
        assert engine.calls == []
    # truncated = judge: whatever is left is judged.
    lax = JudgeOptions.from_profile(profile, policy=dataclasses.replace(profile.policy, truncated="judge"))
    [r] = await scorer.score([ScoreItem(Q, response)], lax)
    assert r.judgment.status == ItemStatus.ok


async def test_the_answer_buried_in_the_cut_middle_is_not_seen(nano_tokenizer):
    scorer, engine = scorer_for(nano_tokenizer, max_model_len=600)
    response = working(20) + " 42 " + working(20, seed=1).replace("Step", "Stage") + " and no more."
    [r] = await scorer.score([ScoreItem(Q, response)], JudgeOptions.from_profile(NANO))
    # The last number is the last step's; it survives the middle cut, so the judge is asked (and the
    # judge, not the policy, must see that it does not answer the question).
    assert r.judgment.truncated_input and engine.judge_calls() == 1


async def test_what_a_forced_verdict_pays_is_the_policys(nano_tokenizer):
    scorer, _ = scorer_for(nano_tokenizer, lambda p, i: "<think>" + "7" * 1000)
    item = [ScoreItem("What is 1 + 1?", "2.")]
    [paid] = await scorer.score(item, JudgeOptions.from_profile(NANO, max_thinking_tokens=50))
    zero = JudgeOptions.from_profile(NANO, max_thinking_tokens=50, policy=RewardPolicy(answer="math", forced=0.0))
    [unpaid] = await scorer.score(item, zero)
    assert paid.judgment.status == unpaid.judgment.status == ItemStatus.forced
    assert paid.judgment.reward in (0.0, 1.0) and unpaid.judgment.reward == 0.0
    assert not unpaid.cached  # the forced reward is part of the cache key


def test_profiles_state_their_policy_and_bad_ones_fail_to_load(tmp_path):
    assert NANO.policy.answer == "math" and load_profile("libra").policy.answer == "math"
    assert load_profile("xverify").policy.answer == "none"  # general answers: a word can be one
    bad = NANO.source and open(NANO.source, encoding="utf-8").read()
    for section, message in (('answer = "maths"', "answer must be one of"), ('forced = "yes"', "forced must be"),
                             ('max_repetition = 0.5', "max_repetition must be"), ("typo = 1", "unknown policy")):
        path = tmp_path / "p.toml"
        path.write_text(bad.replace('answer = "math"', section), encoding="utf-8")
        with pytest.raises(ProfileError, match=message):
            parse_profile("p", path)


def test_a_request_overrides_the_policy_and_judges_show_it(nano_tokenizer):
    engine = FakeEngine(nano_tokenizer, perfect_nano_judge, max_model_len=1024)
    with make_client(engine) as client:
        listing = {j["name"]: j for j in client.get("/judges").json()["judges"]}
        assert listing["nano"]["policy"] == {"answer": "math", "truncated": "answer_seen", "forced": "verdict",
                                             "max_repetition": 8.0}
        items = [{"question": Q, "response": "Solution"}]
        [r] = client.post("/score", json={"items": items}).json()["results"]
        assert r["status"] == "no_answer"
        [r] = client.post("/score", json={"items": items, "policy": {"answer": "none"}}).json()["results"]
        assert r["status"] != "no_answer"
        bad = (({"answer": "maybe"}, "policy.answer"), ({"max_repetition": 0.5}, "policy.max_repetition"),
               ({"forced": "yes"}, "policy.forced"), ({"strict": True}, "policy.strict"))
        for policy, param in bad:
            resp = client.post("/score", json={"items": items, "policy": policy})
            assert resp.status_code == 422 and resp.json()["error"]["param"].startswith(param), (policy, resp.json())


async def test_the_policy_holds_in_verify_modes(nano_tokenizer):
    from service.judge.verifier import VerifyPool

    engine = FakeEngine(nano_tokenizer, perfect_nano_judge, max_model_len=1024)
    scorer = Scorer(engine, verifier=VerifyPool(workers=1))
    try:
        results = await scorer.score([ScoreItem(Q, "42 " * 5000, reference="42"), ScoreItem(Q, "42", reference="42")],
                                     JudgeOptions.from_profile(NANO, mode="hybrid"))
    finally:
        scorer.verifier.close()
    assert [r.judgment.status for r in results] == [ItemStatus.degenerate, ItemStatus.ok]
    assert results[1].judgment.source == "verify"
