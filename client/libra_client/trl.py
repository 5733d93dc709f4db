"""TRL ``GRPOTrainer`` reward function backed by Libra Serve.

    from libra_client.trl import libra_reward
    trainer = GRPOTrainer(..., reward_funcs=[libra_reward])

TRL calls it with ``prompts``, ``completions`` and ``completion_ids`` (keyword arguments) plus every
other dataset column, and, since TRL 1.0, ``log_extra`` and ``log_metric``. Prompts and completions are
strings, or chat messages for conversational data (``libra_client.messages``: content parts become
text, a tool-calling completion is judged whole). A column named ``reference``, ``answer``, ``solution``
or ``ground_truth`` becomes each item's reference. Items the judge could not score come back as
``None``, which TRL treats as a missing reward; but when the service cannot be reached (every retry of
the client failed: status ``client_error``) the call raises, so the step fails with the reason instead
of training on a batch of missing rewards, which TRL would sum to zeros. With ``log_extra`` the
completions table gains each item's ``judge_status`` and ``judge_verdict``; with ``log_metric`` the
step logs ``libra/failed`` and ``libra/forced`` (shares of the batch).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from libra_client.env import shared_client
from libra_client.messages import question_of, response_of

REFERENCE_COLUMNS = ("reference", "answer", "solution", "ground_truth")


def _reference(value: Any) -> Any:
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


async def libra_reward(prompts: list[Any], completions: list[Any], log_extra: Callable | None = None,
                       log_metric: Callable | None = None, **kwargs: Any) -> list[float | None]:
    refs = next((kwargs[c] for c in REFERENCE_COLUMNS if kwargs.get(c) is not None), None)
    items = [{"question": question_of(p), "response": response_of(c),
              "reference": None if refs is None else _reference(refs[i])}
             for i, (p, c) in enumerate(zip(prompts, completions, strict=True))]
    client, options = shared_client()  # the process's: every step reuses its pool and replica state
    results = await client.ascore(items, **options)
    unreached = [r for r in results if r.status == "client_error"]
    if unreached:
        raise RuntimeError(f"Libra Serve gave no result for {len(unreached)} of {len(results)} completions after "
                           f"every retry (LIBRA_MAX_RETRIES): {unreached[0].error}")
    if log_extra is not None:
        log_extra("judge_status", [r.status for r in results])
        log_extra("judge_verdict", [r.verdict or "" for r in results])
    if log_metric is not None and results:
        log_metric("libra/failed", sum(r.reward is None for r in results) / len(results))
        log_metric("libra/forced", sum(r.status == "forced" for r in results) / len(results))
    return [r.reward for r in results]


def libra_reward_sync(prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float | None]:
    """The same, for TRL before 0.27 (which calls reward functions synchronously)."""
    import asyncio

    return asyncio.run(libra_reward(prompts, completions, **kwargs))
