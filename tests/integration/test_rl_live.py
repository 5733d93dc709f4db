"""The closed loop's mechanics on the real engine: TRL's real ``GRPOTrainer`` trains the nano policy
(``nano/policy.py``) on rewards from the live service (the nano judge, reference-free), through
``libra_client.trl.libra_reward``. Whether the policy *learns* is the benchmark's (``python -m nano.rl``,
docs/downstream.md); here: the rewards reach the trainer and move the weights, and an outage fails the
step instead of training on zeros.
"""

from __future__ import annotations

import math

import pytest
import torch

from nano import policy, rl
from tests.helpers import QUICK_START

pytestmark = pytest.mark.integration
SMALL = dict(steps=2, lr=1e-3, prompts_per_step=4, generations=4, eval_every=100, heldout_n=16, progress=False)


# The judge's probability of "correct" as the reward: never a group of equal rewards, so two steps of a
# weak starting policy always carry a gradient (with 0/1 rewards a group of four wrong answers has none).
JUDGE_PROB = rl.Arm("judge-prob", {"LIBRA_JUDGE": "nano", "LIBRA_REWARD_MODE": "prob"})


def test_grpo_steps_on_the_judges_rewards_change_the_policy(live_server):
    start = policy.load()[0].state_dict()
    run = rl.run_grpo(JUDGE_PROB, 1, live_server.url, **SMALL)
    assert [s["items"] for s in run.steps] == [16, 16]
    assert all(s["judge_tokens"] > 0 and s["reward_wait_s"] > 0 for s in run.steps)  # the engine judged them
    logged = [h for h in run.log_history if "rewards/libra_reward/mean" in h]
    assert len(logged) == 2 and logged[0]["libra/failed"] == 0
    # What TRL logged is what the service returned (TRL averages the non-missing rewards).
    for h, s in zip(logged, run.steps, strict=True):
        assert math.isclose(h["rewards/libra_reward/mean"], s["mean_reward"], abs_tol=1e-3)
    # Every completion the reward paid was read against the truth (the observer's view).
    assert all(s["paid"] <= s["items"] and set(s["paid_wrong"]) <= rl.PAID_WRONG_CLASSES for s in run.steps)
    moved = [n for n, w in run.model.state_dict().items() if not torch.equal(w, start[n])]
    assert moved, "no weight changed after two GRPO steps"


def test_a_service_killed_mid_training_fails_the_step_with_the_reason(tmp_path, monkeypatch):
    """A libra-serve of this test's own is killed (SIGKILL, its engine process with it) after the first
    GRPO step: the next step's reward call retries, then raises the client's error; no step trained on
    zeros. Its own server, so the session's shared one keeps serving the other tests."""
    import psutil
    from transformers import TrainerCallback

    from libra_eval.server_process import ServerProcess

    monkeypatch.setenv("LIBRA_MAX_RETRIES", "2")
    with ServerProcess(QUICK_START, log_path=tmp_path / "serve.log") as server:
        killed: list[int] = []

        class Kill(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                if not killed:
                    proc = psutil.Process(server.proc.pid)
                    for p in [*proc.children(recursive=True), proc]:
                        p.kill()
                    killed.append(state.global_step)

        with pytest.raises(RuntimeError, match="Libra Serve gave no result for 16 of 16 completions"):
            rl.run_grpo(rl.ARMS["judge"], 2, server.url, callbacks=(Kill(),), **SMALL)
    assert killed == [1]
