"""The reward policy on the FakeEngine: the answer-presence check, hedged answers, repetition loops,
truncated responses whose final answer was cut, and what a forced verdict pays; per profile and per request."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest

from libra_eval.junk import suite
from service.engine.fake import FakeEngine
from service.judge.extract import last_boxed
from service.judge.hedging import hedged_candidates
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
                             ('answer = "math"\nhedged = "refuse"', "hedged must be one of"),
                             ('max_repetition = 0.5', "max_repetition must be"), ("typo = 1", "unknown policy")):
        path = tmp_path / "p.toml"
        path.write_text(bad.replace('answer = "math"', section), encoding="utf-8")
        with pytest.raises(ProfileError, match=message):
            parse_profile("p", path)


def test_a_request_overrides_the_policy_and_judges_show_it(nano_tokenizer):
    engine = FakeEngine(nano_tokenizer, perfect_nano_judge, max_model_len=1024)
    with make_client(engine) as client:
        listing = {j["name"]: j for j in client.get("/judges").json()["judges"]}
        assert listing["nano"]["policy"] == {"answer": "math", "hedged": "no_answer", "truncated": "answer_seen",
                                             "forced": "verdict", "max_repetition": 8.0}
        items = [{"question": Q, "response": "Solution"}]
        [r] = client.post("/score", json={"items": items}).json()["results"]
        assert r["status"] == "no_answer"
        [r] = client.post("/score", json={"items": items, "policy": {"answer": "none"}}).json()["results"]
        assert r["status"] != "no_answer"
        bad = (({"answer": "maybe"}, "policy.answer"), ({"max_repetition": 0.5}, "policy.max_repetition"),
               ({"forced": "yes"}, "policy.forced"), ({"strict": True}, "policy.strict"),
               ({"hedged": "refuse"}, "policy.hedged"))
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


# -- hedged answers ---------------------------------------------------------------------------------------

HEDGED = [  # (response, the candidates the check names)
    pytest.param("347 + 58 is 405. The answer is 405, or possibly 406.", ("405", "406"), id="or-possibly"),
    pytest.param("405 or 406", ("405", "406"), id="bare"),
    pytest.param("It is either 12 or 13.", ("12", "13"), id="either-last-sentence"),
    pytest.param("The answer is either 12 or 13.", ("12", "13"), id="either-statement"),
    pytest.param("Final Answer: 405 or 406", ("405", "406"), id="final-answer-line"),
    pytest.param("**Final Answer:** $405$ or $406$", ("405", "406"), id="markdown-math"),
    pytest.param("The answer is 405 (possibly 406).", ("405", "406"), id="parenthesis"),
    pytest.param("The answer is 405. Or maybe 406.", ("405", "406"), id="or-next-sentence"),
    pytest.param("So the answer is \\boxed{405} or \\boxed{406}.", ("405", "406"), id="two-boxes-or"),
    pytest.param("First \\boxed{405}. On reflection, \\boxed{406}.", ("405", "406"), id="two-boxes-apart"),
    pytest.param("\\boxed{405 \\text{ or } 406}", ("405", "406"), id="or-in-a-box"),
    pytest.param("The answer is 405. Actually, the answer is 406.", ("405", "406"), id="two-statements"),
    pytest.param("The answer is \\boxed{405}.\nFinal answer: 406", ("405", "406"), id="box-and-statement"),
    pytest.param("The answer is one of 405, 406, 407.", ("405", "406", "407"), id="one-of"),
    pytest.param("The answer is 405, 406 or 407.", ("405", "406", "407"), id="list-or"),
    pytest.param("The answer is 405/406/407.", ("405", "406", "407"), id="slashes"),
    pytest.param("So x = 405 or 406.", ("x = 405", "406"), id="loose-solution-set"),
    pytest.param("The answer is Paris or Lyon.", ("Paris", "Lyon"), id="words"),
    pytest.param("<think>405? 406?</think>The answer is 405, or possibly 406.", ("405", "406"), id="after-thinking"),
]

HONEST = [
    pytest.param("347 + 58 = 405.", id="world-0"),
    pytest.param("347 + 58 is 405. The answer is 405.", id="world-1"),
    pytest.param("We need 347 + 58. Working it out gives 405. So the answer is 405.", id="world-2"),
    pytest.param("First 347 + 50 = 397, then 397 + 8 = 405. The answer is 405.", id="world-3"),
    pytest.param("Computing 347 + 58 step by step, the result is \\boxed{405}.", id="world-4"),
    pytest.param("The answer is \\boxed{405}. Checking: 347 + 58 = 405, so \\boxed{405}.", id="same-box-twice"),
    pytest.param("The answer is \\boxed{12}. So the answer is 12 apples.", id="box-and-unit"),
    pytest.param("\\boxed{x=3 \\text{ or } x=-2}", id="solution-set-box"),
    pytest.param("The answer is x = 2 or x = 3.", id="solution-set"),
    pytest.param("So x < -1 or x > 1.", id="inequalities"),
    pytest.param("The answer is (1, 2).", id="tuple"), pytest.param("The answer is [1, 3].", id="interval"),
    pytest.param("The answer is 1,000.", id="thousands"), pytest.param("The answer is 3.14.", id="decimal"),
    pytest.param("The answer is 405/406.", id="fraction"), pytest.param("The answer is 2, 3.", id="list"),
    pytest.param("The answer is \\frac{22}{7}, or about 3.14.", id="approximation"),
    pytest.param("The probability is \\frac{5}{8}, or 62.5%.", id="equal-values"),
    pytest.param("The answer is 0.062 meters or 6.2 centimeters.", id="two-units"),
    pytest.param("The answer is 405 or more.", id="bound"),
    pytest.param("We need 2 or 3 more steps, so the total is 405.", id="or-in-working"),
    pytest.param("The distance is $\\sqrt{100 - 49}$, or $\\sqrt{51}$.", id="working-restated"),
    pytest.param("The answer is $3! \\times 5! = \\boxed{720}$.", id="computation-then-box"),
    pytest.param("So the answer is 9999.857142857143, that is \\boxed{9999\\frac{6}{7}}.", id="rounded-decimal"),
    pytest.param("Thus the answer is \\boxed{\\textbf{(113)}}; also \\boxed{113}.", id="boxed-choice-format"),
    pytest.param("<think>Is it 405 or 406? 347 + 58 = 405.</think>The answer is 405.", id="weighed-in-thinking"),
]


@pytest.mark.parametrize("response, candidates", HEDGED)
def test_a_hedge_names_its_candidates(response, candidates):
    assert hedged_candidates(response, "What is 347 + 58?") == candidates


@pytest.mark.parametrize("response", HONEST)
def test_an_honest_answer_is_no_hedge(response):
    assert hedged_candidates(response, "What is 347 + 58?") is None


def test_a_question_that_asks_for_several_values_lets_them_be_named():
    assert hedged_candidates("The answer is 5 or 9.", "What are the possible values of x?") is None
    assert hedged_candidates("\\boxed{2}, \\boxed{3}", "Find all real x with x^2 - 5x + 6 = 0.") is None
    assert hedged_candidates("The answer is 5 or 9.", "How many solutions are there?") == ("5", "9")  # one count


def test_no_response_of_the_repositorys_corpora_is_a_hedge():
    root = Path(__file__).resolve().parents[2]
    pairs = []
    for name in ("heldout.jsonl", "libra_bench_nano.jsonl", "unlabeled_nano.jsonl"):
        for line in (root / "nano" / name).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            pairs += [(row["question"], row[k]) for k in ("response", "response_with_cot") if k in row]
            pairs += [(row["question"], r) for r in row.get("responses", [])]
    assert len(pairs) > 1500
    assert [r for q, r in pairs if hedged_candidates(r, q)] == []


async def test_a_hedge_gets_no_answer_without_the_engine(nano_tokenizer):
    scorer, engine = scorer_for(nano_tokenizer)
    items = [ScoreItem(Q, "12 + 30 is 42. The answer is 42, or possibly 43."), ScoreItem(Q, "12 + 30 = 42.")]
    hedge, honest = await scorer.score(items, JudgeOptions.from_profile(NANO))
    assert hedge.judgment.status == ItemStatus.no_answer and hedge.judgment.reward is None
    assert hedge.judgment.message.startswith('hedged: the response names 2 different final answers ("42", "43")')
    assert honest.judgment.reward == 1.0 and engine.judge_calls() == 1


async def test_the_hedge_check_off_or_without_the_answer_check_judges_the_hedge(nano_tokenizer):
    scorer, engine = scorer_for(nano_tokenizer)
    item = [ScoreItem(Q, "The answer is 41, or possibly 42.")]
    for policy in (dataclasses.replace(NANO.policy, hedged="judge"), dataclasses.replace(NANO.policy, answer="none")):
        [r] = await scorer.score(item, JudgeOptions.from_profile(NANO, policy=policy))
        assert r.judgment.status == ItemStatus.ok, policy  # the nano judge reads the last number: 42 pays
    assert engine.judge_calls() == 1  # the second policy's judgment is the first's: "hedged" is not in the key


def test_a_request_turns_the_hedge_check_off(nano_tokenizer):
    engine = FakeEngine(nano_tokenizer, perfect_nano_judge, max_model_len=1024)
    items = [{"question": Q, "response": "The answer is 41, or possibly 42."}]
    with make_client(engine) as client:
        [r] = client.post("/score", json={"items": items}).json()["results"]
        assert r["status"] == "no_answer" and r["message"].startswith("hedged: ")
        [r] = client.post("/score", json={"items": items, "policy": {"hedged": "judge"}}).json()["results"]
        assert r["status"] == "ok" and r["reward"] == 1.0


async def test_the_junk_suites_hedges_are_all_refused(nano_tokenizer):
    junk = suite()
    hedges = [j for j in junk if j.kind == "hedged"]
    assert len(junk) == 274 and len(hedges) == 48 and len({j.kind for j in junk}) == 11
    scorer, engine = scorer_for(nano_tokenizer)
    results = await scorer.score([ScoreItem(j.question, j.response) for j in hedges], JudgeOptions.from_profile(NANO))
    assert {r.judgment.status for r in results} == {ItemStatus.no_answer} and engine.calls == []


def test_the_box_scan_is_linear():
    start = time.perf_counter()
    assert last_boxed("\\boxed{" * 30_000) is None and hedged_candidates("\\boxed{" * 30_000 + "1 or 2") is None
    assert time.perf_counter() - start < 1.0  # one scan per box would take minutes
