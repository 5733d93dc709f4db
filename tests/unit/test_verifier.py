"""Rule-based verification: math-verify equivalences, the killable worker pool, and the scorer's modes."""

from __future__ import annotations

import asyncio
import time

import pytest

from service.engine.fake import FakeEngine
from service.judge.policy import RewardPolicy
from service.judge.profiles import load_profile
from service.judge.scorer import Scorer
from service.judge.types import ItemStatus, JudgeOptions, ScoreItem
from service.judge.verifier import VerifyPool, check_answer
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


async def test_hybrid_sends_only_unverifiable_items_to_the_engine(nano_tokenizer):
    scorer, engine = scorer_with_verify(nano_tokenizer)
    try:
        opts = JudgeOptions.from_profile(load_profile("nano"), mode="hybrid", policy=NO_CHECK)
        results = await scorer.score(MIXED, opts)
    finally:
        scorer.verifier.close()
    assert [r.judgment.source for r in results] == ["verify", "verify", "judge", "judge"]
    assert [r.judgment.reward for r in results[:3]] == [1.0, 0.0, 1.0]
    assert engine.judge_calls() == 2
    assert results[3].judgment.verify.status == "inconclusive"  # why the judge was asked


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
