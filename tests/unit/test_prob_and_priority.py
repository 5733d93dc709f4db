"""RL-native scoring on the FakeEngine: probability rewards read at the verdict position, voting that
just works, priorities passed to an engine that schedules by them."""

from __future__ import annotations

import math

import pytest

from service.engine.base import RequestKind
from service.engine.fake import FakeEngine
from service.judge.prob import label_probs, label_texts, why_no_prob
from service.judge.profiles import load_profile
from service.judge.scorer import Scorer
from service.judge.types import ItemStatus, JudgeOptions, ScoreItem
from tests.helpers import make_client, perfect_nano_judge

NANO = load_profile("nano")
ITEM = ScoreItem("What is 347 + 58?", "347 + 58 = 405.")


def judge_sure(p_correct: float):
    """The next-token distribution at a verdict position: 'c'orrect with p_correct, 'i'ncorrect else."""
    return lambda _prompt: {"c": math.log(p_correct), "i": math.log(1 - p_correct), "x": math.log(1e-3)}


def test_which_profiles_can_give_probabilities():
    assert label_texts(NANO) == {"correct": "correct}", "incorrect": "incorrect}"}
    assert why_no_prob(NANO) is None and why_no_prob(load_profile("general-verifier")) is None
    assert "number" in why_no_prob(load_profile("j1-pointwise"))  # 1 and 10 share their first token


def test_label_probs_read_past_a_gap_and_ignore_other_tokens(nano_tokenizer):
    ids = {t: nano_tokenizer.encode(t, add_special_tokens=False)[0] for t in ("c", "i", "x")}
    probs = label_probs(nano_tokenizer, {ids["c"]: math.log(0.6), ids["i"]: math.log(0.2), ids["x"]: 0.0},
                        label_texts(NANO))
    assert probs == pytest.approx({"correct": 0.75, "incorrect": 0.25})
    assert label_probs(nano_tokenizer, {ids["x"]: 0.0}, label_texts(NANO)) is None


@pytest.mark.parametrize("mode, reward", [("verdict", 1.0), ("prob", 0.8)])
async def test_a_natural_verdict_gets_its_probability_from_a_probe(nano_tokenizer, mode, reward):
    engine = FakeEngine(nano_tokenizer, perfect_nano_judge, max_model_len=1024, logprobs=judge_sure(0.8))
    scorer = Scorer(engine)
    [r] = await scorer.score([ITEM], JudgeOptions.from_profile(NANO, reward_mode=mode, probe=True))
    assert (r.judgment.status, r.judgment.verdict) == (ItemStatus.ok, "correct")
    assert r.judgment.verdict_prob == pytest.approx(0.8, abs=1e-3)
    assert r.judgment.reward == pytest.approx(reward, abs=1e-3)
    [probe] = engine.calls_of(RequestKind.probe)
    # The probe continues the judge's own tokens up to its label: "...\boxed{" then one token.
    assert nano_tokenizer.decode(probe).endswith("\\boxed{")
    probe_spec = engine.specs[engine.request_ids.index(next(
        rid for rid in engine.request_ids if rid.startswith("libra-probe")))]
    assert probe_spec.max_tokens == 1 and probe_spec.logprobs == 20


async def test_a_forced_verdict_reads_its_probability_from_the_forced_request(nano_tokenizer):
    engine = FakeEngine(nano_tokenizer, lambda p, i: "<think>" + "7" * 1000, max_model_len=1024,
                        logprobs=judge_sure(0.3))
    scorer = Scorer(engine)
    [r] = await scorer.score([ITEM], JudgeOptions.from_profile(NANO, max_thinking_tokens=20, reward_mode="prob"))
    assert r.judgment.status == ItemStatus.forced
    assert r.judgment.reward == pytest.approx(0.3, abs=1e-3) and engine.calls_of(RequestKind.probe) == []
    # In verdict mode too, at no cost: the forced request returns the distribution with its choice.
    [r] = await scorer.score([ITEM], JudgeOptions.from_profile(NANO, max_thinking_tokens=20, cache=False))
    assert r.judgment.reward in (0.0, 1.0) and r.judgment.verdict_prob == pytest.approx(0.3, abs=1e-3)


async def test_natural_verdicts_are_not_probed_unless_asked(nano_tokenizer):
    engine = FakeEngine(nano_tokenizer, perfect_nano_judge, max_model_len=1024, logprobs=judge_sure(0.8))
    [r] = await Scorer(engine).score([ITEM], JudgeOptions.from_profile(NANO))
    assert r.judgment.verdict_prob is None and engine.calls_of(RequestKind.probe) == []


async def test_prob_with_k_samples_is_the_mean(nano_tokenizer):
    engine = FakeEngine(nano_tokenizer, perfect_nano_judge, max_model_len=1024, logprobs=judge_sure(0.9))
    scorer = Scorer(engine)
    opts = JudgeOptions.from_profile(NANO, samples=3, reward_mode="prob")
    [r] = await scorer.score([ITEM], opts)
    assert opts.temperature == 0.6 and opts.top_p == 0.95  # the profile's voting sampling
    assert r.judgment.reward == pytest.approx(0.9, abs=1e-3) and len(engine.calls_of(RequestKind.probe)) == 3


def test_http_reward_mode_verdict_prob_priority_and_voting(nano_tokenizer):
    engine = FakeEngine(nano_tokenizer, perfect_nano_judge, max_model_len=1024, logprobs=judge_sure(0.7))
    with make_client(engine, small_request_items=1) as client:
        [r] = client.post("/score", json={"items": [{"question": ITEM.question, "response": ITEM.response, "id": "a"}],
                                           "verdict_prob": True}
                          ).json()["results"]
        assert r["reward"] == 1.0 and r["verdict_prob"] == pytest.approx(0.7, abs=1e-3)
        [r] = client.post("/score", json={"items": [{"question": "What is 1 + 2?", "response": "1 + 2 = 3."}],
                                          "reward_mode": "prob"}).json()["results"]
        assert r["reward"] == pytest.approx(0.7, abs=1e-3)
        resp = client.post("/score", json={"judge": "j1-pointwise", "reward_mode": "prob",
                                           "items": [{"question": "q", "response": "r"}]})
        assert resp.status_code == 422 and "j1-pointwise" in resp.json()["error"]["message"]
        assert resp.json()["error"]["param"] == "reward_mode"
        for bad, param in (({"reward_mode": "soft"}, "reward_mode"), ({"stream": "yes"}, "stream"),
                           ({"priority": 10_000}, "priority"), ({"verdict_prob": "1"}, "verdict_prob")):
            resp = client.post("/score", json={"items": [{"question": "q", "response": "1"}], **bad})
            assert resp.status_code == 422 and resp.json()["error"]["param"] == param, bad
        # Voting: k samples and no temperature use the profile's voting temperature.
        [r] = client.post("/score", json={"items": [{"question": "What is 2 + 2?", "response": "2 + 2 = 4."}],
                                          "samples": 3}).json()["results"]
        assert sum(r["votes"].values()) == 3 and item_specs(engine)[-1].temperature == 0.6
        # fcfs: a priority is accepted and ignored; /limits says which policy is active.
        client.post("/score", json={"items": [{"question": "What is 3 + 2?", "response": "5"}], "priority": -5})
        assert item_priorities(engine) == {0}
        assert client.get("/limits").json()["scheduling_policy"] == "fcfs"
        got = client.post("/get_reward?reward_mode=prob", json={"query": [
            "<|im_start|>user\nWhat is 2 + 5?<|im_end|>\n<|im_start|>assistant\n2 + 5 = 7."]}).json()
        assert got["rewards"] == [pytest.approx(0.7, abs=1e-3)]
        slime = client.post("/slime/reward?reward_mode=prob", json={"prompt": "What is 2 + 6?",
                                                                     "response": "2 + 6 = 8."}).json()
        assert slime["reward"] == pytest.approx(0.7, abs=1e-3) and slime["verdict_prob"] == pytest.approx(0.7, abs=1e-3)


def item_specs(engine) -> list:
    """The specs of the engine requests made for items, in order (not the readiness probe's, which runs
    every few seconds through the same engine)."""
    return [s for s, rid in zip(engine.specs, engine.request_ids, strict=True) if not rid.startswith("libra-ready")]


def item_priorities(engine) -> set[int]:
    return {s.priority for s in item_specs(engine)}


def test_priorities_reach_an_engine_that_schedules_by_them(nano_tokenizer):
    engine = FakeEngine(nano_tokenizer, perfect_nano_judge, max_model_len=1024)
    engine.scheduling_policy = "priority"
    with make_client(engine, small_request_items=2, small_request_priority=-7) as client:
        group = [{"question": "What is 123 + 456?", "response": f"123 + 456 = {579 + i}."} for i in range(3)]
        client.post("/score", json={"items": group, "priority": 3})
        kinds = {rid.split("-")[1] for rid in engine.request_ids}
        assert {"prime", "judge"} <= kinds and item_priorities(engine) == {3}  # priming included
        engine.specs.clear(), engine.request_ids.clear()
        client.post("/score", json={"items": [{"question": "What is 3 + 3?", "response": "6"}]})
        assert item_priorities(engine) == {-7}  # a small request: the server's default
        engine.specs.clear(), engine.request_ids.clear()
        client.post("/score", json={"items": [{"question": f"What is {i} + 1?", "response": f"{i + 1}"}
                                              for i in range(3)]})
        assert item_priorities(engine) == {0}
        assert client.get("/limits").json()["scheduling_policy"] == "priority"
