"""The scorer's logic on the FakeEngine: statuses, forcing, voting, dedup, cache, groups, limits."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from service.engine.base import RequestKind
from service.engine.fake import FakeEngine
from service.judge.prepare import TRUNCATION_MARK
from service.judge.profiles import load_profile
from service.judge.scorer import Scorer
from service.judge.types import ItemStatus, JudgeOptions, ScoreItem
from tests.helpers import perfect_nano_judge, working

NANO = load_profile("nano")
ITEMS = [
    ScoreItem("What is 347 + 58?", "347 + 58 = 405.", id="a"),
    ScoreItem("What is 347 + 58?", "347 + 58 = 415.", id="b"),
    ScoreItem("Compute 12 - 5.", "The answer is 7.", id="c"),
]


def scorer_for(tokenizer, reply=perfect_nano_judge, **kwargs):
    engine = FakeEngine(tokenizer, reply, max_model_len=kwargs.pop("max_model_len", 1024),
                        delay_s=kwargs.pop("delay_s", 0.0))
    return Scorer(engine, **kwargs), engine


def opts(profile=NANO, **kw):
    return JudgeOptions.from_profile(profile, **kw)


async def test_rewards_follow_the_profile_map(nano_tokenizer):
    scorer, engine = scorer_for(nano_tokenizer)
    results = await scorer.score(ITEMS, opts())
    assert [(r.id, r.judgment.status, r.judgment.verdict, r.judgment.reward) for r in results] == [
        ("a", ItemStatus.ok, "correct", 1.0), ("b", ItemStatus.ok, "incorrect", 0.0),
        ("c", ItemStatus.ok, "correct", 1.0)]
    assert all(r.judgment.usage.prompt_tokens > 0 and r.judgment.usage.completion_tokens > 0 for r in results)


async def test_unparsed_and_truncated_without_forcing(nano_tokenizer):
    replies = {"x": "<think>t</think>\nno verdict here", "y": "<think>" + "1" * 400}

    def reply(prompt, _i):
        return replies["x"] if "Question: x" in prompt else replies["y"]

    scorer, _ = scorer_for(nano_tokenizer, reply)
    o = opts(max_thinking_tokens=None)
    o = dataclasses.replace(o, max_thinking_tokens=None)
    results = await scorer.score([ScoreItem("x", "r = 3."), ScoreItem("y", "r = 3.")], o)
    assert [r.judgment.status for r in results] == [ItemStatus.unparsed, ItemStatus.truncated]
    assert [r.judgment.reward for r in results] == [None, None]
    assert results[1].judgment.votes == {"truncated": 1} and results[0].judgment.votes == {"unparsed": 1}


async def test_thinking_budget_forces_a_constrained_verdict(nano_tokenizer):
    scorer, engine = scorer_for(nano_tokenizer, lambda p, i: "<think>" + "7" * 1000)
    [result] = await scorer.score([ScoreItem("What is 1 + 1?", "2.")], opts(max_thinking_tokens=50))
    assert result.judgment.status == ItemStatus.forced
    assert result.judgment.verdict in ("correct", "incorrect") and result.judgment.reward is not None
    first, forced = engine.specs
    assert first.max_tokens == 50  # the thinking budget, exactly
    assert forced.choices == NANO.force_choices
    closing = nano_tokenizer.decode(engine.calls[1][-12:], skip_special_tokens=False)
    assert closing.endswith("</think>\n\n\\boxed{")
    assert scorer.stats.forced_verdicts == 1


def continuing(full: str):
    """A reply that continues ``full`` from wherever the prompt's assistant turn left off."""

    def reply(prompt, _i):
        done = prompt.split("<|im_start|>assistant\n", 1)[1]
        return full[len(done):]

    return reply


async def test_an_answer_cut_after_closed_thinking_is_finished_then_forced(nano_tokenizer):
    scorer, engine = scorer_for(nano_tokenizer, continuing("<think>ok</think>\n\n" + "blah " * 200))
    [result] = await scorer.score([ScoreItem("What is 1 + 1?", "2.")], opts(max_thinking_tokens=20))
    assert result.judgment.status == ItemStatus.forced
    assert [s.max_tokens for s in engine.specs[:2]] == [20, 64]  # budget, then room to finish the answer
    tail = nano_tokenizer.decode(engine.calls[2], skip_special_tokens=False)
    assert tail.count("</think>") == 1 and tail.endswith("\\boxed{")


async def test_a_forced_verdict_after_the_answer_room_still_fits_a_prompt_cut_to_the_limit(nano_tokenizer):
    # The prompt is cut as close to the context as the output budget allows; the judge closes its
    # thinking, uses all of its answer room without a verdict, and is then forced: the forced request
    # (prompt + thinking + answer + closing + choice) must still fit (found by the junk suite on vLLM).
    scorer, engine = scorer_for(nano_tokenizer, continuing("<think>ok</think>\n\n" + "blah " * 200),
                                max_model_len=400)
    response = "First: 2. " + working(30) + "\nSo 1 + 1 = 2."
    [result] = await scorer.score([ScoreItem("What is 1 + 1?", response)], opts(max_thinking_tokens=20))
    assert result.judgment.truncated_input and result.judgment.status == ItemStatus.forced
    assert [len(c) + s.max_tokens for c, s in zip(engine.calls, engine.specs, strict=True)][-1] <= 400


async def test_an_answer_cut_after_closed_thinking_can_finish_on_its_own(nano_tokenizer):
    answer = "<think>" + "1" * 15 + "</think>\n\n\\boxed{incorrect}"
    scorer, engine = scorer_for(nano_tokenizer, continuing(answer))
    [result] = await scorer.score([ScoreItem("What is 1 + 1?", "2.")], opts(max_thinking_tokens=25))
    assert (result.judgment.status, result.judgment.verdict) == (ItemStatus.ok, "incorrect")
    assert len(engine.calls) == 2 and not engine.specs[1].choices


async def test_k_samples_vote_and_count_unparsed(nano_tokenizer):
    answers = ["<think>t</think>\\boxed{correct}", "<think>t</think>\\boxed{incorrect}",
               "<think>t</think>\\boxed{correct}", "<think>t</think>\nhmm"]
    scorer, engine = scorer_for(nano_tokenizer, lambda p, i: answers[i])
    [r] = await scorer.score([ScoreItem("q", "r = 3.")], opts(samples=4, temperature=0.8))
    assert engine.specs[0].n == 4 and engine.judge_calls() == 1  # one request shares the prompt's KV
    assert r.judgment.status == ItemStatus.ok
    assert r.judgment.votes == {"correct": 2, "incorrect": 1, "unparsed": 1}
    assert r.judgment.reward == pytest.approx(2 / 3)  # mean over the samples that gave a verdict
    assert r.judgment.verdict == "correct" and r.judgment.agreement == pytest.approx(0.5)


async def test_duplicates_in_a_request_are_judged_once(nano_tokenizer):
    scorer, engine = scorer_for(nano_tokenizer)
    items = [ITEMS[0], ITEMS[1], dataclasses.replace(ITEMS[0], id="dup"), ITEMS[0]]
    results = await scorer.score(items, opts())
    assert engine.judge_calls() == 2
    assert [r.cached for r in results] == [False, False, True, True]
    assert [r.id for r in results] == ["a", "b", "dup", "a"]
    assert results[2].judgment.reward == results[0].judgment.reward == 1.0
    assert scorer.stats.dedup_hits == 2
    assert scorer.stats.saved_completion_tokens == 2 * results[0].judgment.usage.completion_tokens


async def test_cache_across_requests_greedy_by_default_sampled_by_opt_in(nano_tokenizer):
    scorer, engine = scorer_for(nano_tokenizer)
    await scorer.score(ITEMS, opts())
    again = await scorer.score(ITEMS, opts())
    assert engine.judge_calls() == 3 and all(r.cached for r in again)
    sampled = opts(temperature=0.7)
    await scorer.score(ITEMS[:1], sampled)
    await scorer.score(ITEMS[:1], sampled)
    assert engine.judge_calls() == 5  # sampled judgments are not reused by default
    await scorer.score(ITEMS[:1], dataclasses.replace(sampled, cache=True))
    [r] = await scorer.score(ITEMS[:1], dataclasses.replace(sampled, cache=True))
    assert engine.judge_calls() == 6 and r.cached
    [r] = await scorer.score(ITEMS[:1], opts(cache=False))
    assert engine.judge_calls() == 7 and not r.cached


async def test_concurrent_requests_share_an_in_flight_judgment(nano_tokenizer):
    scorer, engine = scorer_for(nano_tokenizer, delay_s=0.05)
    o = opts(cache=False)
    first, second = await asyncio.gather(scorer.score(ITEMS[:1], o), scorer.score(ITEMS[:1], o))
    assert engine.judge_calls() == 1
    assert first[0].judgment.reward == second[0].judgment.reward == 1.0
    assert [first[0].cached, second[0].cached].count(True) == 1


async def test_one_client_leaving_does_not_abort_a_shared_judgment(nano_tokenizer):
    scorer, engine = scorer_for(nano_tokenizer, delay_s=0.2)
    o = opts(cache=False)
    leaver = asyncio.ensure_future(scorer.score(ITEMS[:1], o))
    stayer = asyncio.ensure_future(scorer.score(ITEMS[:1], o))
    await asyncio.sleep(0.05)
    leaver.cancel()
    [r] = await stayer
    assert r.judgment.status == ItemStatus.ok and not engine.aborted
    # When every waiter leaves, the engine request is cancelled (vLLM aborts it).
    alone = asyncio.ensure_future(scorer.score(ITEMS[1:2], o))
    await asyncio.sleep(0.05)
    alone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await alone
    await asyncio.sleep(0)
    assert len(engine.aborted) == 1 and engine.num_unfinished_requests() == 0


async def test_reference_rules(nano_tokenizer):
    scorer, engine = scorer_for(nano_tokenizer, max_model_len=16384)  # room for the libra profiles' budgets
    ref = load_profile("libra-ref")
    results = await scorer.score([ScoreItem("q", "r = 3"), ScoreItem("q", "r = 3", reference="42")], opts(ref))
    assert results[0].judgment.status == ItemStatus.invalid and "reference" in results[0].judgment.message
    assert engine.judge_calls() == 1
    assert "## Reference answer\n42" in nano_tokenizer.decode(engine.calls[0])
    optional = dataclasses.replace(  # a profile that shows a reference only when an item has one
        load_profile("libra"), name="optional-ref", source="optional-ref", reference="optional",
        messages=({"role": "user", "content": "{reference_block}Question: {question}\nResponse: {response}"},),
        reference_block={"present": "[Reference]\n{reference}\n\n", "absent": ""})
    await scorer.score([ScoreItem("q1", "r = 3"), ScoreItem("q2", "r = 3", reference="42")], opts(optional))
    without, with_ref = (nano_tokenizer.decode(c) for c in engine.calls[1:3])
    assert "[Reference]" not in without and "[Reference]\n42" in with_ref
    unused = await scorer.score([ScoreItem("What is 1 + 2?", "3.", reference="SECRET")], opts())
    assert unused[0].judgment.status == ItemStatus.ok and "SECRET" not in nano_tokenizer.decode(engine.calls[-1])


async def test_too_long_prompts(nano_tokenizer):
    scorer, engine = scorer_for(nano_tokenizer, max_model_len=600)
    long_response = "To start: 3. " + working(15) + " = 7."
    strict = dataclasses.replace(NANO, truncate="none")
    [r] = await scorer.score([ScoreItem("What is 3 + 4?", long_response)], opts(strict))
    assert r.judgment.status == ItemStatus.too_long and engine.calls == []
    [r] = await scorer.score([ScoreItem("What is 3 + 4?", long_response)], opts())
    assert r.judgment.status == ItemStatus.ok and r.judgment.truncated_input
    prompt = engine.calls[0]
    assert len(prompt) + scorer.preparer.first_cap(opts()) <= 600
    text = nano_tokenizer.decode(prompt)
    assert TRUNCATION_MARK in text and "To start: 3." in text and "= 7." in text  # middle dropped, both ends kept


async def test_items_sharing_a_question_are_primed_once(nano_tokenizer):
    scorer, engine = scorer_for(nano_tokenizer)
    group = [ScoreItem("What is 347 + 58?", f"347 + 58 = {405 + d}.") for d in range(8)]
    await scorer.score(group + [ITEMS[2]], opts())
    primes = engine.calls_of(RequestKind.prime)
    assert len(primes) == 1 and scorer.stats.primed_groups == 1
    judged = engine.calls_of(RequestKind.judge)
    assert sum(c[: len(primes[0])] == primes[0] for c in judged) == 8
    assert nano_tokenizer.decode(primes[0]).endswith("Question: What is 347 + 58?\nResponse: 347 + 58 = 4")


async def test_return_reasoning(nano_tokenizer):
    scorer, _ = scorer_for(nano_tokenizer)
    [r] = await scorer.score(ITEMS[:1], opts(return_reasoning=True))
    assert len(r.judgment.reasoning) == 1 and "347+58=405" in r.judgment.reasoning[0]
    [r] = await scorer.score(ITEMS[:1], opts())
    assert r.judgment.reasoning is None and r.judgment.outputs is None


async def test_outputs_carry_each_samples_text_and_verdict(nano_tokenizer):
    scorer, _ = scorer_for(nano_tokenizer)
    [r] = await scorer.score(ITEMS[1:2], opts(return_reasoning=True, samples=2, temperature=1.0))
    assert [(o.verdict, o.status) for o in r.judgment.outputs] == [("incorrect", ItemStatus.ok)] * 2
    first = r.judgment.outputs[0].text
    assert first.startswith("<think>") and first.endswith("\\boxed{incorrect}")


async def test_forced_output_text_includes_the_forced_closing(nano_tokenizer):
    scorer, _ = scorer_for(nano_tokenizer, lambda p, i: "<think>" + "7" * 1000)
    [r] = await scorer.score([ScoreItem("What is 1 + 1?", "2.")], opts(max_thinking_tokens=20, return_reasoning=True))
    [out] = r.judgment.outputs
    assert out.status == ItemStatus.forced and out.verdict in ("correct", "incorrect")
    assert out.text.endswith("</think>\n\n\\boxed{" + out.verdict + "}")


async def test_return_prompt_fills_the_messages_once(nano_tokenizer):
    scorer, _ = scorer_for(nano_tokenizer)
    tricky = ScoreItem("What is {response}?", "347 + 58 = 405. <|im_end|>")
    [r] = await scorer.score([tricky], opts(return_prompt=True))
    [msg] = r.prompt
    assert msg["role"] == "user"
    assert "Question: What is {response}?\nResponse: 347 + 58 = 405. <|im_end|>" in msg["content"]
    [r] = await scorer.score([tricky], opts())
    assert r.prompt is None


async def test_return_prompt_shows_a_truncated_response_as_truncated(nano_tokenizer):
    scorer, _ = scorer_for(nano_tokenizer, max_model_len=700)
    response = working(40) + "\nSo 1 + 1 = 2."
    [r] = await scorer.score([ScoreItem("What is 1 + 1?", response)], opts(return_prompt=True))
    assert r.judgment.truncated_input
    content = r.prompt[0]["content"]
    assert TRUNCATION_MARK in content and content.count("Step ") < 40


async def test_engine_death_leaves_no_unread_task_errors(nano_tokenizer, caplog):
    # When the engine dies under a big request every pending judgment fails with it; each unread
    # failure would be logged by asyncio with its traceback (600 of them took the dying server 36 s).
    import gc
    import logging

    from service.engine.base import EngineDead

    scorer, engine = scorer_for(nano_tokenizer, delay_s=0.05)
    items = [ScoreItem(f"What is {i} + 1?", f"{i + 1}.") for i in range(200)]

    async def kill_soon():
        await asyncio.sleep(0.01)
        engine.dead = True

    original = engine.generate

    async def generate(ids, spec, rid):
        result = await original(ids, spec, rid)
        if engine.dead:
            raise EngineDead("fake engine died")
        return result

    engine.generate = generate
    killer = asyncio.ensure_future(kill_soon())
    with caplog.at_level(logging.ERROR, logger="asyncio"), pytest.raises(EngineDead):
        await scorer.score(items, opts(cache=False))
    await killer
    gc.collect()
    await asyncio.sleep(0)
    assert "never retrieved" not in caplog.text
