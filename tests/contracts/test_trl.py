"""TRL's own ``GRPOTrainer`` calling ``libra_client.trl`` against the live service: TRL installs here
without a GPU, so its real code runs, unchanged (trl 1.16.0, the dev extra).

What the tests rely on, from huggingface/trl ``trl/trainer/grpo_trainer.py`` (read at commit
f2cd57710ae345ea6428ae95363267fcf38a3dc8, docs/research/trainer-contracts.md section 4; run here at
1.16.0): ``_calculate_rewards`` calls each reward function with keyword arguments ``prompts``,
``completions``, ``completion_ids`` and every other data-set column, plus ``trainer_state``,
``log_extra`` and ``log_metric``; an async function runs on TRL's event-loop thread; ``None`` becomes
NaN, and ``_generate_and_score_completions`` leaves a row of NaN out of its group's baseline with
advantage 0 (1.16.0); conversational completions are message lists.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

NANO = str(Path(__file__).resolve().parents[2] / "service" / "models" / "nano-judge")


@pytest.fixture(scope="module")
def trainer(live_server, tmp_path_factory):
    """A real GRPOTrainer (the nano judge's weights as a stand-in policy, on the CPU) with our reward."""
    import os

    os.environ["LIBRA_URL"] = live_server.url
    warnings.filterwarnings("ignore", message="TRL currently supports vLLM")
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from libra_client.trl import libra_reward

    data = Dataset.from_list([
        {"prompt": [{"role": "user", "content": "What is 347 + 58?"}], "solution": 405},
        {"prompt": [{"role": "user", "content": "What is 12 + 30?"}], "solution": 42},
    ])
    args = GRPOConfig(output_dir=str(tmp_path_factory.mktemp("grpo")), per_device_train_batch_size=4,
                      num_generations=2, max_completion_length=24, max_steps=1, use_cpu=True, report_to=[],
                      logging_steps=1, save_strategy="no", bf16=False, log_completions=False)
    yield GRPOTrainer(model=NANO, reward_funcs=[libra_reward], args=args, train_dataset=data)
    os.environ.pop("LIBRA_URL", None)


def test_a_real_grpo_step_logs_our_metrics(trainer):
    trainer.train()
    logged = trainer.state.log_history[0]
    assert "rewards/libra_reward/mean" in logged and "libra/failed" in logged and "libra/forced" in logged


def test_calculate_rewards_on_chat_tool_and_multimodal_completions(trainer):
    """TRL's ``_calculate_rewards`` itself, on completions whose rewards we know."""
    user = [{"role": "user", "content": "What is 347 + 58?"}]
    image_prompt = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is 56 + 71?"}]}]
    tool_run = [  # a tool-calling completion: the whole final assistant turn is judged
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {
            "name": "add", "arguments": {"a": 347, "b": 58}}}]},
        {"role": "tool", "content": "405"},
        {"role": "assistant", "content": "347 + 58 = 405."},
    ]
    prompts = [user, user, image_prompt, user]
    completions = [
        [{"role": "assistant", "content": "347 + 58 = 405."}],
        [{"role": "assistant", "content": [{"type": "text", "text": "347 + 58 = 415."}]}],
        [{"role": "assistant", "content": "56 + 71 = 127."}],
        tool_run,
    ]
    inputs = [{"prompt": p, "solution": s} for p, s in zip(prompts, [405, 405, 127, 405], strict=True)]
    trainer._pending_extra_logs.clear()
    rewards = trainer._calculate_rewards(inputs, prompts, completions, [[1]] * 4)
    # The tool run is judged (what the judge is shown of it: tests/unit/test_client_messages.py); the
    # nano judge, trained on plain arithmetic answers only, need not get that one right.
    assert rewards[:3, 0].tolist() == [1.0, 0.0, 1.0] and not math.isnan(rewards[3, 0].item())
    assert trainer._pending_extra_logs["judge_status"] == ["ok"] * 4


def test_a_refused_completion_costs_the_policy_and_is_not_a_missing_reward(trainer):
    """A response the reward policy refuses (no final answer; a hedge) gets the failure reward, 0.0: TRL
    1.16 gives a NaN row advantage 0, which would make the refusal free (docs/downstream.md)."""
    prompts = [[{"role": "user", "content": "What is 347 + 58?"}]] * 3
    completions = [[{"role": "assistant", "content": "Thought process:"}],
                   [{"role": "assistant", "content": "The answer is 405, or possibly 406."}],
                   [{"role": "assistant", "content": "347 + 58 = 405."}]]
    inputs = [{"prompt": p, "solution": 405} for p in prompts]
    trainer._pending_extra_logs.clear()
    rewards = trainer._calculate_rewards(inputs, prompts, completions, [[1]] * 3)[:, 0].tolist()
    assert rewards == [0.0, 0.0, 1.0]
    assert trainer._pending_extra_logs["judge_status"] == ["no_answer", "no_answer", "ok"]


def test_the_sync_form_for_older_trl(trainer):
    from libra_client.trl import libra_reward_sync

    out = libra_reward_sync(prompts=["What is 12 + 30?"], completions=["12 + 30 = 42."], completion_ids=[[1]],
                            trainer_state=trainer.state)
    assert out == [1.0]


def test_a_rubric_column_through_tables_and_per_criterion_metrics(trainer, monkeypatch):
    """A rubric column as a ``datasets`` table gives it back (every criterion with every key of the column's
    struct, those it lacks as None), judged by the nano judge as a rubric grader (``nano-rubric``: its
    criteria are sums), and TRL's own metric store gets one mean per criterion id."""
    from datasets import Dataset

    monkeypatch.setenv("LIBRA_JUDGE", "nano-rubric")
    rubric = [{"id": "sum", "text": "Calculate 347 + 58.", "weight": 3, "veto": True},
              {"id": "restated", "text": "What is 347 + 58?"}]
    prompts = [[{"role": "user", "content": "What is 347 + 58?"}]] * 2
    rows = list(Dataset.from_list([{"prompt": p, "rubric": rubric} for p in prompts]))
    assert rows[0]["rubric"][1]["veto"] is None  # what the table made of the key only the first criterion has
    completions = [[{"role": "assistant", "content": "347 + 58 = 405. The answer is 405."}],
                   [{"role": "assistant", "content": "347 + 58 = 415. The answer is 415."}]]
    trainer._pending_metrics.clear()
    rewards = trainer._calculate_rewards(rows, prompts, completions, [[1]] * 2)[:, 0].tolist()
    assert rewards == [1.0, 0.0]
    assert trainer._pending_metrics["libra/criterion/sum"] == [0.5]
    assert trainer._pending_metrics["libra/rubric_veto_failed"] == [0.5]
