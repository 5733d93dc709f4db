"""verl ``custom_reward_function``: ``compute_score`` and its batched form call Libra Serve.

verl passes the decoded response (``solution_str``), the dataset's ``ground_truth`` and
``extra_info``; a judge also needs the question, which verl data preparation usually keeps in
``extra_info["question"]`` (``extra_info["prompt"]`` is read too). ``ground_truth`` is sent as the
reference: profiles that take one use it, hybrid/verify modes check against it (``LIBRA_MODE``).
Items the judge could not score get ``LIBRA_FAILURE_REWARD`` (default 0.0).
"""

from __future__ import annotations

import os
from typing import Any

from libra_client.env import async_client, sync_client


def _item(solution_str: str, ground_truth: Any, extra_info: dict | None) -> dict:
    info = extra_info or {}
    question = info.get("question") or info.get("prompt") or ""
    ref = None if ground_truth is None else str(ground_truth)
    return {"question": str(question), "response": solution_str, "reference": ref}


def _reward(result) -> float:
    return result.reward if result.reward is not None else float(os.environ.get("LIBRA_FAILURE_REWARD", "0"))


def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None,
                  **kwargs: Any) -> float:
    """One sample (verl's NaiveRewardManager calls this per item)."""
    client, options = sync_client()
    [result] = client.score([_item(solution_str, ground_truth, extra_info)], **options)
    return _reward(result)


def compute_score_batch(data_sources: list[str], solution_strs: list[str], ground_truths: list[Any],
                        extra_infos: list[dict | None], **kwargs: Any) -> list[float]:
    """The whole batch in one call (verl's BatchRewardManager)."""
    client, options = sync_client()
    items = [_item(s, g, e) for s, g, e in zip(solution_strs, ground_truths, extra_infos, strict=True)]
    return [_reward(r) for r in client.score(items, **options)]


async def compute_score_async(data_source: str, solution_str: str, ground_truth: Any,
                              extra_info: dict | None = None, **kwargs: Any) -> float:
    """Async per-sample form, for reward loops that await their score function."""
    client, options = async_client()
    async with client:
        [result] = await client.score([_item(solution_str, ground_truth, extra_info)], **options)
    return _reward(result)
