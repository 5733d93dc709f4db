"""verl's reward managers calling ``libra_client.verl``, run against the live service as verl's source
shows them (verl itself needs a GPU stack; these reproduce its calls and what it does with the results).

Facts from volcengine/verl @ b178a3cd56f58b2d502255daba591e92833930a7 (docs/research/trainer-contracts.md
section 3); our own code:
- ``verl/workers/reward_manager/naive.py`` (3ecef438c) L79-100: per sample, keyword arguments only,
  ``compute_score(data_source=, solution_str=, ground_truth=, extra_info=)`` with ``extra_info`` the data
  set's dict, first given ``num_turns`` and ``rollout_reward_scores``; a dict result must hold ``score``
  and every key is appended to ``reward_extra_info``.
- ``verl/workers/reward_manager/batch.py`` (3ecef438c) L70-107: one call, the same names in the plural.
- ``verl/experimental/reward_loop/reward_manager/naive.py`` (6bc3e1232) L34-99: an async ``compute_score``
  is awaited; ``reward_loop.py`` L304-308 takes the extra keys from the first sample and builds
  ``np.array([info[key] for info in infos])`` (a key missing later raises KeyError).
- ``ray_trainer.py`` L666-667: validation asserts every extra key has one value per sample.
- Data: ``examples/data_preprocess/gsm8k.py`` (dfa3933ac) keeps ``extra_info["question"]``;
  ``math_dataset.py`` (515f2255a) keeps only ``split`` and ``index``.
"""

from __future__ import annotations

import asyncio
import importlib
import warnings

import numpy as np
import pytest

from loadtest.verl_calls import batch_manager, naive_manager, reward_loop

pytestmark = pytest.mark.integration

# (data_source, response, ground_truth, extra_info) as verl's GSM8K and MATH preprocessing write them
GSM8K = [("openai/gsm8k", "347 + 58 = 405.", "405",
          {"split": "test", "index": 0, "answer": "347 + 58 = 405\n#### 405", "question": "What is 347 + 58?"}),
         ("openai/gsm8k", "903 - 27 is 866. The answer is 866.", "876",
          {"split": "test", "index": 1, "answer": "903 - 27 = 876\n#### 876", "question": "Compute 903 - 27."})]
MATH = [("DigitalLearningGmbH/MATH-lighteval", "Computing 56 + 71 step by step, the result is \\boxed{127}.", "127",
         {"split": "test", "index": 7})]


@pytest.fixture
def verl_adapter(live_server, monkeypatch):
    monkeypatch.setenv("LIBRA_URL", live_server.url)
    module = importlib.reload(importlib.import_module("libra_client.verl"))  # a fresh warn-once flag
    return module


def validation_lengths_hold(extra, n):
    return all(len(values) == n for values in extra.values())


def test_naive_manager_on_gsm8k(verl_adapter):
    rewards, extra = naive_manager(verl_adapter.compute_score, GSM8K)
    assert rewards == [1.0, 0.0]
    assert extra["judge_status"] == ["ok", "ok"] and extra["judge_verdict"] == ["correct", "incorrect"]
    assert extra["judge_failed"] == [0.0, 0.0] and validation_lengths_hold(extra, 2)


def test_batch_manager_keeps_one_key_set_across_ok_and_failed_samples(verl_adapter):
    rows = [*GSM8K, ("openai/gsm8k", "1 " * 300, "1", {"question": "What is 0 + 1?"})]
    rewards, extra = batch_manager(verl_adapter.compute_score_batch, rows)
    assert rewards[:2] == [1.0, 0.0] and extra["judge_status"][2] == "degenerate"
    assert extra["judge_failed"] == [0.0, 0.0, 1.0] and validation_lengths_hold(extra, 3)
    assert set(extra) == {"score", "judge_status", "judge_verdict", "judge_forced", "judge_failed", "rubric_met",
                          "rubric_pitfalls", "rubric_veto_failed"}


def test_reward_loop_awaits_the_async_form(verl_adapter):
    arrays = asyncio.run(reward_loop(verl_adapter.compute_score_async, GSM8K))
    assert arrays["score"].tolist() == [1.0, 0.0] and arrays["judge_forced"].dtype == np.float64


def test_math_preprocessing_without_a_question_warns_once_and_fails_the_items(verl_adapter):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rewards, extra = naive_manager(verl_adapter.compute_score, MATH * 3)
    loud = [w for w in caught if "no question in extra_info" in str(w.message)]
    assert len(loud) == 1 and "LIBRA_QUESTION_KEY" in str(loud[0].message)
    assert rewards == [0.0] * 3 and extra["judge_status"] == ["invalid"] * 3 and extra["judge_failed"] == [1.0] * 3


def test_the_question_key_can_be_named(verl_adapter, monkeypatch):
    monkeypatch.setenv("LIBRA_QUESTION_KEY", "problem_text")
    rows = [(s, r, g, dict(i, problem_text="What is 56 + 71?")) for s, r, g, i in MATH]
    rewards, _ = naive_manager(verl_adapter.compute_score, rows)
    assert rewards == [1.0]


def test_float_return_for_configs_that_expect_it(verl_adapter, monkeypatch):
    monkeypatch.setenv("LIBRA_VERL_RETURN", "float")
    rewards, extra = naive_manager(verl_adapter.compute_score, GSM8K)
    assert rewards == [1.0, 0.0] and extra == {}
