"""Items shaped like RL-trainer traffic, from the nano judge's world, shared by the locust users and
the benchmark harness (so both send the same kind of batches).

- ``rl_items``: GRPO-style groups (``group_size`` responses to one question), about half of them wrong,
  with a share of duplicate responses (a policy often samples the same answer twice);
- ``unique_items``: no two items alike;
- ``pad=True`` adds long-tailed reasoning before the final answer (log-normal length, median ~300
  characters, a tail into thousands), as real policy outputs have. Responses still end with the answer.
"""

from __future__ import annotations

import random

from nano import world

FILLER = ("Let me check this step by step. ", "Carrying the digits over gives the next column. ",
          "I will verify by estimating first. ", "Rounding both numbers helps to see the size. ",
          "Now add the tens and keep the carry. ", "Double-checking the last column. ")


def padded(rng: random.Random, text: str, median_chars: float = 300.0, sigma: float = 1.0,
           cap: int = 8000) -> str:
    length = min(cap, int(rng.lognormvariate(0.0, sigma) * median_chars))
    parts: list[str] = []
    while sum(map(len, parts)) < length:
        parts.append(rng.choice(FILLER))
    return "".join(parts) + text


def _response(rng: random.Random, item: world.Item, correct: bool, pad: bool) -> str:
    answer = item.truth if correct else world.wrong_answer(rng, item.a, item.op, item.b, item.truth)
    text = world.response(rng, item.a, item.op, item.b, answer)
    return padded(rng, text) if pad else text


def rl_items(rng: random.Random, n: int, group_size: int = 16, dup_share: float = 0.25,
             pad: bool = False) -> list[dict]:
    """``n`` items in groups of ``group_size`` per question; ``dup_share`` of them repeat an earlier
    response of their group."""
    items: list[dict] = []
    while len(items) < n:
        base = world.make_item(rng, "eval")
        group: list[dict] = []
        for _ in range(min(group_size, n - len(items))):
            if group and rng.random() < dup_share:
                group.append(dict(rng.choice(group)))
            else:
                group.append({"question": base.question, "response": _response(rng, base, rng.random() < 0.5, pad)})
        items.extend(group)
    return items


def unique_items(rng: random.Random, n: int, pad: bool = False) -> list[dict]:
    seen: set[tuple[str, str]] = set()
    items: list[dict] = []
    while len(items) < n:
        base = world.make_item(rng, None)
        item = {"question": base.question, "response": _response(rng, base, rng.random() < 0.5, pad)}
        key = (item["question"], item["response"])
        if key not in seen:
            seen.add(key)
            items.append(item)
    return items
