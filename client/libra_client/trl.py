"""TRL ``GRPOTrainer`` reward function backed by Libra Serve.

    from libra_client.trl import libra_reward
    trainer = GRPOTrainer(..., reward_funcs=[libra_reward])

TRL calls it with ``prompts``, ``completions`` and ``completion_ids`` (keyword arguments) plus every
other dataset column, and, since TRL 1.0, ``log_extra`` and ``log_metric``. Prompts and completions are
strings, or chat messages for conversational data (``libra_client.messages``: content parts become
text, a tool-calling completion is judged whole). A column named ``reference``, ``answer``, ``solution``
or ``ground_truth`` becomes each item's reference.

Two kinds of item have no reward from the service, and they reach TRL differently:

- A response the reward policy refuses (``REFUSED``: no final answer, a hedge, a repetition loop, too
  long to judge) gets ``LIBRA_FAILURE_REWARD`` (0.0): it was scored, and it earns nothing. Not ``None``:
  TRL (1.16, ``_generate_and_score_completions``) leaves a completion whose every reward is ``None`` out
  of its group's baseline and gives it advantage 0, so a refused response would cost the policy nothing
  and the refusal would teach nothing (measured: docs/downstream.md, the hedging share with the check
  on fell no faster than with it off).
- An item the judge could not score (its output unparsed, the engine failed, the deadline passed) comes
  back ``None``: TRL's missing reward, no signal either way, as the response may well be right.

When the service cannot be reached (every retry of the client failed: status ``client_error``) the call
raises, so the step fails with the reason instead of running on a batch with no reward at all. With
``log_extra`` the completions table gains each item's ``judge_status`` and ``judge_verdict``; with
``log_metric`` the step logs ``libra/failed`` (the share sent as ``None``), ``libra/refused`` and
``libra/forced`` (shares of the batch).

With a rubric judge (``LIBRA_JUDGE=rubric-criterion``), a dataset column ``rubric`` gives each row's criteria
(a list, or its JSON text: docs/rubrics.md), and the step also logs ``libra/criterion/<id>`` for each
criterion id in the batch (the share of items that met it; a pitfall: that avoided it) and
``libra/rubric_veto_failed``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from libra_client.env import _number, criteria, shared_client
from libra_client.messages import question_of, response_of

REFERENCE_COLUMNS = ("reference", "answer", "solution", "ground_truth")
RUBRIC_COLUMN = "rubric"  # a rubric judge's criteria per row: a list of criteria (RaR's rows too) or its JSON text
REFUSED = frozenset({"no_answer", "degenerate", "too_long"})  # the reward policy's: the response's own doing


def _reference(value: Any) -> Any:
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


async def libra_reward(prompts: list[Any], completions: list[Any], log_extra: Callable | None = None,
                       log_metric: Callable | None = None, **kwargs: Any) -> list[float | None]:
    refused = _number("LIBRA_FAILURE_REWARD", float, 0.0)  # read first: a bad value fails before any work
    refs = next((kwargs[c] for c in REFERENCE_COLUMNS if kwargs.get(c) is not None), None)
    rubrics = kwargs.get(RUBRIC_COLUMN)
    items = [{"question": question_of(p), "response": response_of(c),
              "reference": None if refs is None else _reference(refs[i])}
             for i, (p, c) in enumerate(zip(prompts, completions, strict=True))]
    if rubrics is not None:
        for item, rubric in zip(items, rubrics, strict=True):
            item["rubric"] = criteria(json.loads(rubric) if isinstance(rubric, str) else rubric)
    client, options = shared_client()  # the process's: every step reuses its pool and replica state
    results = await client.ascore(items, **options)
    unreached = [r for r in results if r.status == "client_error"]
    if unreached:
        raise RuntimeError(f"Libra Serve gave no result for {len(unreached)} of {len(results)} completions after "
                           f"every retry (LIBRA_MAX_RETRIES): {unreached[0].error}")
    if log_extra is not None:
        log_extra("judge_status", [r.status for r in results])
        log_extra("judge_verdict", [r.verdict or "" for r in results])
    rewards = [refused if r.reward is None and r.status in REFUSED else r.reward for r in results]
    if log_metric is not None and results:
        log_metric("libra/failed", sum(x is None for x in rewards) / len(results))
        log_metric("libra/refused", sum(r.reward is None and r.status in REFUSED for r in results) / len(results))
        log_metric("libra/forced", sum(r.status == "forced" for r in results) / len(results))
        if rubrics is not None:
            _log_rubric(results, log_metric)
    return rewards


def _log_rubric(results: list, log_metric: Callable) -> None:
    """A rubric judge's parts: per criterion id, the share of the batch's items that met it (a pitfall: that
    avoided it), over the items where it was decided; and the share of items whose veto failed."""
    met: dict[str, list[float]] = {}
    vetoed = 0
    for r in results:
        failed_veto = False
        for c in r.raw.get("components") or ():
            if c.get("reward") is None:
                continue
            good = c["reward"] if c["polarity"] == "positive" else 1.0 - c["reward"]
            met.setdefault(c["id"] if c.get("id") is not None else f"criterion_{c['index']}", []).append(good >= 0.5)
            failed_veto |= c["veto"] and good < 0.5
        vetoed += failed_veto
    for key, values in met.items():
        log_metric(f"libra/criterion/{key}", sum(values) / len(values))
    log_metric("libra/rubric_veto_failed", vetoed / len(results))


def libra_reward_sync(prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float | None]:
    """The same, for TRL before 0.27 (which calls reward functions synchronously)."""
    import asyncio

    return asyncio.run(libra_reward(prompts, completions, **kwargs))
