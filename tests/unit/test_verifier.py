"""Rule-based verification: math-verify equivalences, the killable worker pool, and the scorer's modes."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from service.engine.fake import FakeEngine
from service.judge.cascade import Route, rule_first_route
from service.judge.policy import RewardPolicy
from service.judge.profiles import BUILTIN_DIR, ProfileError, load_profile, parse_profile
from service.judge.scorer import Scorer
from service.judge.types import ItemStatus, JudgeOptions, ScoreItem
from service.judge.verifier import VerifyOutcome, VerifyPool, check_answer
from tests.helpers import HANGING_CHECK, make_client, perfect_nano_judge

CASES = [
    # (id, reference, response, expected)
    ("integer", "405", "347 + 58 = 405. The answer is 405.", "correct"),
    ("integer-wrong", "405", "347 + 58 = 415. The answer is 415.", "incorrect"),
    ("boxed-first", "12", "Maybe 15 at first, but the answer is \\boxed{12}. Check: 3 * 5 = 15.", "correct"),
    ("fraction-vs-decimal", "\\frac{1}{2}", "The answer is $0.5$.", "correct"),
    ("decimal-vs-fraction", "0.75", "So we get \\boxed{\\frac{3}{4}}", "correct"),
    ("latex-vs-plain", "\\frac{3}{4}", "The answer is 3/4", "correct"),
    ("sqrt-forms", "2\\sqrt{2}", "The answer is $\\sqrt{8}$", "correct"),
    ("pi-expression", "\\frac{\\pi}{2}", "The angle is $\\boxed{\\pi/2}$", "correct"),
    ("interval", "[1, 3)", "The solution set is $x \\in [1, 3)$", "correct"),
    ("interval-wrong-bracket", "[1, 3)", "The solution set is $x \\in [1, 3]$", "incorrect"),
    ("set-order", "\\{1, 2\\}", "The roots form \\boxed{\\{2, 1\\}}", "correct"),
    ("units", "12", "The length is \\boxed{12 \\text{ cm}}", "correct"),
    ("percent", "50\\%", "It rises by \\boxed{50\\%}", "correct"),
    ("wrong-fraction", "\\frac{1}{3}", "The answer is $0.33$", "incorrect"),
    ("negative", "-7", "Therefore \\boxed{-7}.", "correct"),
    ("sign-error", "-7", "Therefore \\boxed{7}.", "incorrect"),
    ("no-answer", "5", "I am not sure how to solve this.", "inconclusive"),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c[0]) for c in CASES])
def test_math_verify_equivalences(case):
    _, reference, response, expected = case
    assert check_answer(reference, response)[0] == expected


@pytest.fixture(scope="module")
def hang_pool():
    # 3 s: a real check finishes in milliseconds (a new worker pays math-verify's start-up before it reports
    # ready); the margin is for 2 shared cores under load. The hang still takes the whole limit.
    pool = VerifyPool(workers=2, item_timeout_s=3.0, check_path=HANGING_CHECK)
    yield pool
    pool.close()


async def test_a_hanging_check_times_out_without_stalling_others(hang_pool):
    t0 = time.perf_counter()
    hang = asyncio.ensure_future(hang_pool.check("HANG", "anything"))
    await asyncio.sleep(0.05)
    others = await asyncio.gather(*(hang_pool.check(str(i), f"The answer is {i}.") for i in range(50)))
    others_done = time.perf_counter() - t0
    assert [o.status for o in others] == ["correct"] * 50
    outcome = await hang
    assert outcome.status == "timeout" and "took over" in outcome.message
    assert hang_pool.restarts >= 1 and hang_pool.timeouts >= 1
    # The replacement worker serves normally.
    assert (await hang_pool.check("1/2", "$0.5$")).status == "correct"
    assert others_done < 30  # sanity only: the point is that the others finished at all


async def test_a_new_workers_start_up_is_not_charged_to_its_first_item():
    """A new worker's start-up (for math-verify: imports and a first parse, 0.4-1.2 s) happens before it reports
    ready, so the first item of a new pool, and the first after a worker is replaced, meets a deadline below
    that cost. The check here has a 1 s start-up and does no work after it, so the 0.5 s limit fails every
    first item if start-up is charged to it and none if not."""
    pool = VerifyPool(workers=1, item_timeout_s=0.5, check_path="tests.verify_slow_start:check")
    try:
        assert (await pool.check("3", "The answer is 3.")).status == "correct"
        assert (await pool.check("HANG", "x")).status == "timeout"  # this worker is killed and replaced
        assert (await pool.check("4", "The answer is 5.")).status == "incorrect"
        assert pool.restarts == 1
    finally:
        pool.close()


async def test_a_hang_inside_a_batch_is_charged_to_that_item_only(hang_pool):
    jobs = [hang_pool.check("3", "The answer is 3."), hang_pool.check("HANG", "x"),
            hang_pool.check("4", "The answer is 5.")]
    outcomes = await asyncio.gather(*jobs)
    assert [o.status for o in outcomes] == ["correct", "timeout", "incorrect"]


def scorer_with_verify(tokenizer):
    engine = FakeEngine(tokenizer, perfect_nano_judge, max_model_len=1024)
    return Scorer(engine, verifier=VerifyPool(workers=1)), engine


MIXED = [
    ScoreItem("What is 347 + 58?", "347 + 58 = 405.", reference="405"),  # verifiable: correct
    ScoreItem("What is 347 + 58?", "347 + 58 = 415.", reference="405"),  # verifiable: incorrect
    ScoreItem("What is 12 + 5?", "12 + 5 = 17."),  # no reference: the judge
    ScoreItem("What is 20 - 5?", "I think it is fifteen.", reference="15"),  # inconclusive: the judge
]
NO_CHECK = RewardPolicy(answer="none")  # "fifteen" is a final answer the nano profile's math check cannot see


ROUTE_CASES = [
    # (id, check outcome (None: no reference), trust_rule, route)
    ("accepted", "correct", "correct", Route.rule_correct),
    ("accepted-conclusive", "correct", "conclusive", Route.rule_correct),
    ("rejected-goes-to-judge", "incorrect", "correct", Route.judge_rule_incorrect),
    ("rejected-stands-when-trusted", "incorrect", "conclusive", Route.rule_incorrect),
    ("inconclusive", "inconclusive", "correct", Route.judge_rule_inconclusive),
    ("inconclusive-conclusive", "inconclusive", "conclusive", Route.judge_rule_inconclusive),
    ("timeout", "timeout", "conclusive", Route.judge_rule_inconclusive),
    ("error", "error", "correct", Route.judge_rule_inconclusive),
    ("no-reference", None, "correct", Route.judge_no_reference),
    ("no-reference-conclusive", None, "conclusive", Route.judge_no_reference),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c[0]) for c in ROUTE_CASES])
def test_rule_first_routes(case):
    _, status, trust, route = case
    assert rule_first_route(None if status is None else VerifyOutcome(status), trust) == route


def test_rule_first_refuses_an_unknown_trust():
    with pytest.raises(ValueError, match="trust_rule must be one of"):
        rule_first_route(VerifyOutcome("correct"), "both")


async def test_hybrid_trusts_only_the_rules_acceptance_by_default(nano_tokenizer):
    scorer, engine = scorer_with_verify(nano_tokenizer)
    try:
        opts = JudgeOptions.from_profile(load_profile("nano"), mode="hybrid", policy=NO_CHECK)
        assert opts.trust_rule == "correct"  # the nano profile says nothing: the default
        results = await scorer.score(MIXED, opts)
    finally:
        scorer.verifier.close()
    assert [r.judgment.source for r in results] == ["verify", "judge", "judge", "judge"]
    assert [r.judgment.route for r in results] == ["rule_correct", "judge_rule_incorrect", "judge_no_reference",
                                                   "judge_rule_inconclusive"]
    assert [r.judgment.reward for r in results[:3]] == [1.0, 0.0, 1.0]
    assert engine.judge_calls() == 3
    # The judge and the check both gave a verdict on the rejected item: they agree (415 is wrong).
    assert (results[1].judgment.verify.status, results[1].judgment.verify_agrees) == ("incorrect", True)
    assert results[3].judgment.verify.status == "inconclusive"  # why the judge was asked
    assert dict(scorer.stats.routes) == {"rule_correct": 1, "judge_rule_incorrect": 1, "judge_no_reference": 1,
                                         "judge_rule_inconclusive": 1}


async def test_hybrid_with_conclusive_trust_sends_only_unverifiable_items_to_the_engine(nano_tokenizer):
    scorer, engine = scorer_with_verify(nano_tokenizer)
    try:
        opts = JudgeOptions.from_profile(load_profile("nano"), mode="hybrid", policy=NO_CHECK, trust_rule="conclusive")
        results = await scorer.score(MIXED, opts)
    finally:
        scorer.verifier.close()
    assert [r.judgment.source for r in results] == ["verify", "verify", "judge", "judge"]
    assert [r.judgment.route for r in results] == ["rule_correct", "rule_incorrect", "judge_no_reference",
                                                   "judge_rule_inconclusive"]
    assert [r.judgment.reward for r in results[:3]] == [1.0, 0.0, 1.0]
    assert engine.judge_calls() == 2


async def test_a_judge_overturns_the_rules_rejection_of_a_right_answer(nano_tokenizer):
    """The cascade's point: a reference written as words ('four hundred five', as text-answer data sets
    store it) makes math-verify reject the right 405; the judge reads the response and pays it. With the
    rejection trusted, the right answer earns nothing."""
    scorer, engine = scorer_with_verify(nano_tokenizer)
    item = ScoreItem("What is 347 + 58?", "347 + 58 = 405.", reference="four hundred five")
    try:
        nano = load_profile("nano")
        [cascade] = await scorer.score([item], JudgeOptions.from_profile(nano, mode="hybrid"))
        trust = JudgeOptions.from_profile(nano, mode="hybrid", trust_rule="conclusive")
        [trusted] = await scorer.score([item], trust)
    finally:
        scorer.verifier.close()
    assert (cascade.judgment.route, cascade.judgment.reward, cascade.judgment.verify.status) == (
        "judge_rule_incorrect", 1.0, "incorrect")
    assert cascade.judgment.verify_agrees is False and scorer.stats.verify_agreement["disagree"] == 1
    assert (trusted.judgment.route, trusted.judgment.reward, trusted.judgment.source) == (
        "rule_incorrect", 0.0, "verify")
    assert engine.judge_calls() == 1


async def test_every_route_streams_caches_votes_and_pays_probabilities(nano_tokenizer):
    """Rule-decided items stream at once, judged ones as each finishes; the streamed result is the final
    one; a repeat is served from the cache on the judged routes; voting and prob rewards hold there."""
    engine = FakeEngine(nano_tokenizer, perfect_nano_judge, max_model_len=1024, delay_s=0.05,
                        logprobs=lambda _p: {"c": math.log(0.9), "i": math.log(0.1)})
    scorer = Scorer(engine, verifier=VerifyPool(workers=1))
    nano = load_profile("nano")
    try:
        streamed: list = []
        results = await scorer.score(MIXED, JudgeOptions.from_profile(nano, mode="hybrid", policy=NO_CHECK),
                                     on_result=streamed.append)
        assert streamed[0].index == 0 and streamed[0].judgment.route == "rule_correct"  # before any judgment
        assert sorted(r.index for r in streamed) == [0, 1, 2, 3]
        assert all(r is results[r.index] for r in streamed)
        again = await scorer.score(MIXED, JudgeOptions.from_profile(nano, mode="hybrid", policy=NO_CHECK))
        # (the fake judge finds no number in "fifteen": an error, which is never cached)
        assert [r.cached for r in again] == [False, True, True, False] and again[3].judgment.status == "error"
        assert [r.judgment.route for r in again] == [r.judgment.route for r in results]
        calls = engine.judge_calls()
        voted = await scorer.score(MIXED, JudgeOptions.from_profile(nano, mode="hybrid", policy=NO_CHECK, samples=3,
                                                                    reward_mode="prob"))
        assert engine.judge_calls() - calls == 3  # one request (3 samples) per judged item; the accepted one, none
        assert voted[0].judgment.reward == 1.0 and voted[0].judgment.votes == {"correct": 1}
        for r in voted[1:3]:  # (the last: the fake judge's error, as above)
            assert sum(r.judgment.votes.values()) == 3 and r.judgment.verdict_prob is not None
        assert voted[2].judgment.reward == pytest.approx(0.9, abs=1e-3)  # P(correct), not the verdict's 1.0
    finally:
        scorer.verifier.close()


async def test_verify_and_both_modes(nano_tokenizer):
    scorer, engine = scorer_with_verify(nano_tokenizer)
    try:
        verify = await scorer.score(MIXED, JudgeOptions.from_profile(load_profile("nano"), mode="verify",
                                                                      policy=NO_CHECK))
        assert engine.judge_calls() == 0
        assert [r.judgment.status for r in verify] == [ItemStatus.ok, ItemStatus.ok, ItemStatus.invalid,
                                                       ItemStatus.unparsed]
        both = await scorer.score(MIXED[:2], JudgeOptions.from_profile(load_profile("nano"), mode="both",
                                                                        cache=False))
        assert [r.judgment.source for r in both] == ["judge", "judge"]
        assert [r.judgment.verify.status for r in both] == ["correct", "incorrect"]
        assert [r.judgment.verify_agrees for r in both] == [True, True]
        assert scorer.stats.verify_agreement["agree"] == 2
    finally:
        scorer.verifier.close()


def test_modes_over_http_and_a_hang_does_not_stall_other_requests(nano_tokenizer):
    engine = FakeEngine(nano_tokenizer, perfect_nano_judge, max_model_len=1024)
    with make_client(engine, verify_timeout_s=3.0, verify_check=HANGING_CHECK) as client:
        body = {"mode": "verify", "items": [{"question": "q", "response": "The answer is 3.", "reference": "3"}]}
        [r] = client.post("/score", json=body).json()["results"]
        assert (r["status"], r["source"], r["reward"], r["verify"]["status"]) == ("ok", "verify", 1.0, "correct")

        from concurrent.futures import ThreadPoolExecutor

        hang = {"mode": "verify", "items": [{"question": "q", "response": "x = 1", "reference": "HANG"}]}
        with ThreadPoolExecutor(2) as pool:
            slow = pool.submit(client.post, "/score", json=hang)
            time.sleep(0.1)
            quick = pool.submit(client.post, "/score", json={"items": [
                {"question": "What is 1 + 2?", "response": "1 + 2 = 3."}]})
            assert quick.result().json()["results"][0]["verdict"] == "correct"
            assert not slow.done(), "the judged request waited for the hung check"
            [r] = slow.result().json()["results"]
        assert r["status"] == "timeout" and r["source"] == "verify"
        text = client.get("/metrics").text
        assert "libra_verify_timeouts_total 1.0" in text
    with make_client(engine, verify_workers=0) as client:
        resp = client.post("/score", json={**body, "mode": "hybrid"})
        assert resp.status_code == 422 and resp.json()["error"]["param"] == "mode"


def test_the_cascade_over_http(nano_tokenizer):
    engine = FakeEngine(nano_tokenizer, perfect_nano_judge, max_model_len=1024)
    items = [{"question": "What is 347 + 58?", "response": "347 + 58 = 405.", "reference": "405"},
             {"question": "What is 347 + 58?", "response": "347 + 58 = 405.", "reference": "four hundred five"}]
    with make_client(engine) as client:
        nano = next(j for j in client.get("/judges").json()["judges"] if j["name"] == "nano")
        assert nano["cascade"]["trust_rule"] == "correct"
        results = client.post("/score", json={"items": items, "mode": "hybrid"}).json()["results"]
        assert [(r["route"], r["source"], r["reward"]) for r in results] == [
            ("rule_correct", "verify", 1.0), ("judge_rule_incorrect", "judge", 1.0)]
        results = client.post("/score", json={"items": items, "mode": "hybrid", "trust_rule": "conclusive"}).json()
        assert [r["route"] for r in results["results"]] == ["rule_correct", "rule_incorrect"]
        [r] = client.post("/score", json={"items": items[:1]}).json()["results"]
        assert r["route"] is None  # mode judge: no cascade
        text = client.get("/metrics").text
        assert 'libra_cascade_items_total{route="rule_correct"} 2.0' in text
        assert 'libra_cascade_items_total{route="judge_rule_incorrect"} 1.0' in text
        assert 'libra_cascade_items_total{route="judge_rule_inconclusive"} 0.0' in text
        for body, message in (({"mode": "judge", "trust_rule": "correct"},
                               "applies only to mode hybrid (mode is judge)"),
                              ({"mode": "hybrid", "trust_rule": "both"}, "correct")):
            resp = client.post("/score", json={"items": items, **body})
            assert resp.status_code == 422, resp.text
            error = resp.json()["error"]
            assert error["param"] == "trust_rule" and message in error["message"]
        assert client.post("/score", json={"items": items, "mode": "hybrid"}).status_code == 200  # still serving


def test_a_profile_sets_its_trust_and_a_bad_one_does_not_load(tmp_path):
    text = (BUILTIN_DIR / "nano.toml").read_text(encoding="utf-8").split("\n[cascade]")[0]  # (the last table)
    path = tmp_path / "p.toml"
    path.write_text(text + '\n[cascade]\ntrust_rule = "conclusive"\n', encoding="utf-8")
    profile = parse_profile("p", path)
    assert profile.trust_rule == "conclusive"
    assert JudgeOptions.from_profile(profile, mode="hybrid").trust_rule == "conclusive"
    assert JudgeOptions.from_profile(profile, mode="hybrid", trust_rule="correct").trust_rule == "correct"
    path.write_text(text + '\n[cascade]\ntrust_rule = "incorrect"\n', encoding="utf-8")
    with pytest.raises(ProfileError, match=r"\[cascade\] trust_rule must be one of \('correct', 'conclusive'\)"):
        parse_profile("p", path)
