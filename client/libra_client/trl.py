"""TRL ``GRPOTrainer`` reward function backed by Libra Serve.

    from libra_client.trl import libra_reward
    trainer = GRPOTrainer(..., reward_funcs=[libra_reward])

TRL calls it with ``prompts`` and ``completions`` (strings, or chat message lists for
conversational datasets) plus the dataset's other columns as keyword arguments; a column named
``reference``, ``answer``, ``solution`` or ``ground_truth`` becomes each item's reference. Items
the judge could not score come back as ``None``, which TRL treats as a missing reward.
"""

from __future__ import annotations

from typing import Any

from libra_client.env import async_client

REFERENCE_COLUMNS = ("reference", "answer", "solution", "ground_truth")


def _text(value: Any, role: str | None = None) -> str:
    if isinstance(value, str):
        return value
    messages = [m for m in value if role is None or m.get("role") == role] or list(value)
    return str(messages[-1].get("content", "")) if messages else ""


async def libra_reward(prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float | None]:
    refs = next((kwargs[c] for c in REFERENCE_COLUMNS if kwargs.get(c) is not None), None)
    items = [{"question": _text(p, "user"), "response": _text(c, "assistant"),
              "reference": None if refs is None or refs[i] is None else str(refs[i])}
             for i, (p, c) in enumerate(zip(prompts, completions, strict=True))]
    client, options = async_client()
    async with client:
        results = await client.score(items, **options)
    return [r.reward for r in results]
