"""verl ``custom_reward_function``: ``compute_score`` and its batched and async forms call Libra Serve.

    custom_reward_function.path=pkg://libra_client.verl custom_reward_function.name=compute_score_batch

verl calls ``compute_score(data_source=, solution_str=, ground_truth=, extra_info=)`` with keyword
arguments (the batch manager: the same names in the plural, as lists). A judge also needs the question:
it is looked up in ``extra_info`` under ``LIBRA_QUESTION_KEY`` if set, else ``question`` (verl's GSM8K
preprocessing), ``problem``, ``prompt`` or ``raw_prompt`` (a string or chat messages). verl's MATH
preprocessing keeps none of them: then the item is sent without one, the server answers ``invalid``, and
a warning says so once per process (the fix is one line in the preprocessing: docs/integrations.md).
``ground_truth`` is the reference (any scalar). Items the judge could not score get
``LIBRA_FAILURE_REWARD`` (default 0.0). Every form goes through the process's one client
(``libra_client.env``), configured by the other ``LIBRA_*`` variables.

Each sample's result is verl's dict form: ``score`` plus ``judge_status`` and ``judge_verdict`` (text)
and ``judge_forced`` / ``judge_failed`` (0.0 or 1.0), the same keys for every sample, so they land in
``reward_extra_info`` (verl skips text values when it averages). ``LIBRA_VERL_RETURN=float`` returns
the bare score instead.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

from libra_client.env import criteria, shared_client
from libra_client.messages import question_of

QUESTION_KEYS = ("question", "problem", "prompt", "raw_prompt")
log = logging.getLogger(__name__)
_warned_no_question = False


def _question(extra_info: dict | None) -> str:
    global _warned_no_question
    info = extra_info or {}
    key = os.environ.get("LIBRA_QUESTION_KEY")
    for name in (key,) if key else QUESTION_KEYS:
        value = info.get(name)
        if isinstance(value, str | list | tuple) and value:
            return question_of(value)
    if not _warned_no_question:
        _warned_no_question = True
        message = (f"libra_client.verl: no question in extra_info (looked for {key or ', '.join(QUESTION_KEYS)}; "
                   f"it has {sorted(info)}). The judge cannot judge an answer without its question: these items "
                   "come back 'invalid' with the failure reward. Add extra_info['question'] in your data "
                   "preprocessing (verl's MATH example keeps none) or set LIBRA_QUESTION_KEY.")
        log.warning(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    return ""


def _item(solution_str: str, ground_truth: Any, extra_info: dict | None) -> dict:
    scalar = ground_truth is None or isinstance(ground_truth, str | int | float | bool)
    ref = ground_truth if scalar else str(ground_truth)  # the server turns a scalar into text
    item = {"question": _question(extra_info), "response": solution_str, "reference": ref}
    rubric = (extra_info or {}).get("rubric")
    if isinstance(rubric, list | tuple):  # a rubric judge's criteria, as the data set carries them (RaR's rows)
        item["rubric"] = criteria(rubric)
    return item


def _result(result) -> dict[str, Any] | float:
    failure = float(os.environ.get("LIBRA_FAILURE_REWARD", "0"))
    score = result.reward if result.reward is not None else failure
    if os.environ.get("LIBRA_VERL_RETURN", "dict") == "float":
        return score
    return {"score": score, "judge_status": result.status, "judge_verdict": result.verdict or "",
            "judge_forced": float(result.status == "forced"), "judge_failed": float(result.reward is None),
            **_rubric_info(result.raw.get("components"))}


def _rubric_info(components: list[dict] | None) -> dict[str, float]:
    """A rubric item's parts as keys every sample has (verl's reward loop takes the keys from the first sample
    and reads them from every other): the share of criteria met, pitfalls committed, a failed veto; 0.0 for
    an item without a rubric. Each criterion's own verdict is in the result's components (rubric ids differ
    from prompt to prompt, so they cannot be keys)."""
    decided = [c for c in components or () if c.get("reward") is not None]
    good = [c["reward"] if c["polarity"] == "positive" else 1.0 - c["reward"] for c in decided]
    return {"rubric_met": sum(g >= 0.5 for g in good) / len(good) if good else 0.0,
            "rubric_pitfalls": float(sum(c["polarity"] == "negative" and c["reward"] >= 0.5 for c in decided)),
            "rubric_veto_failed": float(any(c["veto"] and g < 0.5 for c, g in zip(decided, good, strict=True)))}


def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None,
                  **kwargs: Any) -> dict[str, Any] | float:
    """One sample (verl's naive and reward-loop managers call this per item)."""
    client, options = shared_client()  # one per process: per-sample calls share its pool and replica state
    [result] = client.score([_item(solution_str, ground_truth, extra_info)], **options)
    return _result(result)


def compute_score_batch(data_sources: list[str], solution_strs: list[str], ground_truths: list[Any],
                        extra_infos: list[dict | None], **kwargs: Any) -> list[dict[str, Any] | float]:
    """The whole batch in one call (verl's BatchRewardManager): much faster than one call per sample."""
    client, options = shared_client()
    items = [_item(s, g, e) for s, g, e in zip(solution_strs, ground_truths, extra_infos, strict=True)]
    return [_result(r) for r in client.score(items, **options)]


async def compute_score_async(data_source: str, solution_str: str, ground_truth: Any,
                              extra_info: dict | None = None, **kwargs: Any) -> dict[str, Any] | float:
    """Async per-sample form, for verl's reward loop (it awaits an async compute_score)."""
    client, options = shared_client()
    [result] = await client.ascore([_item(solution_str, ground_truth, extra_info)], **options)
    return _result(result)
