"""verl's three ways of calling a ``compute_score``, reproduced from its source (the facts and commits:
tests/contracts/test_verl.py). ``verl_managers.py`` times them and the verl contract tests run them; they live
here, beside the benchmark, because the tests may import loadtest but loadtest never imports the tests."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import numpy as np


def naive_manager(compute_score, rows):
    """NaiveRewardManager.__call__: one call per sample, extra info collected per key."""
    rewards, extra = [], defaultdict(list)
    for source, response, truth, info in rows:
        info = dict(info, num_turns=None, rollout_reward_scores={})
        score = compute_score(data_source=source, solution_str=response, ground_truth=truth, extra_info=info)
        if isinstance(score, dict):
            reward = score["score"]
            for key, value in score.items():
                extra[key].append(value)
        else:
            reward = score
        rewards.append(reward)
    return rewards, dict(extra)


def batch_manager(compute_score_batch, rows):
    infos = [dict(info, rollout_reward_scores={}) for *_, info in rows]
    scores = compute_score_batch(data_sources=[r[0] for r in rows], solution_strs=[r[1] for r in rows],
                                 ground_truths=[r[2] for r in rows], extra_infos=infos)
    extra = defaultdict(list)
    for s in scores:
        for key, value in s.items():
            extra[key].append(value)
    return [s["score"] for s in scores], dict(extra)


async def reward_loop(compute_score_async, rows):
    """The reward loop: one awaited call per sample; the extra keys come from the first sample."""
    outs = await asyncio.gather(*(compute_score_async(data_source=s, solution_str=r, ground_truth=g,
                                                      extra_info=dict(i, num_turns=1, tool_extra_fields={}))
                                  for s, r, g, i in rows))
    infos = [o if isinstance(o, dict) else {"acc": o} for o in outs]
    keys = list(infos[0])
    return {key: np.array([info[key] for info in infos]) for key in keys}
