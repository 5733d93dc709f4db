"""What a scalar reward model's scores mean together: pairs and groups.

A Bradley-Terry reward model is trained so that sigmoid(score(a) - score(b)) is the probability that
response a is preferred to response b; one score alone has no fixed scale (Skywork-Reward-V2's run from
about -20 to +30). So a request may score:

- **pairs**: an item with ``chosen`` and ``rejected`` is scored as two items (``PairMap`` maps them
  back); its reward is P(chosen > rejected) = sigmoid(score(chosen) - score(rejected)), its ``score``
  the difference, and ``pair`` keeps both scores and statuses. A half without a score leaves the pair
  without a reward and its status says which half and why.
- **groups** (``normalize: group``): each scored item's reward becomes (reward - mean) / (std + 1e-4)
  over its group (its ``group``, else its question), as TRL's GRPO computes advantages (std with Bessel's
  correction, epsilon 1e-4: trl/trainer/grpo_trainer.py, ``_generate_and_score_completions``). A group
  with a single scored item gets 0: it has nothing to be compared with. Items without a score keep
  their status and no reward.

Both work on a request's results after scoring, on copies: a judgment may be shared with duplicates
and the cache, and its raw score stays what the model said.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace

from service.judge.judging import sigmoid
from service.judge.types import ItemResult, ItemStatus, Judgment, PairScores, ScoreItem, Usage

GROUP_EPS = 1e-4  # TRL GRPO's epsilon under the group's std


class PairMap:
    """The flat items of a request (a pair is two: chosen, then rejected) mapped back to its items."""

    def __init__(self, is_pair: Sequence[bool]):
        self.slots: list[tuple[int, ...]] = []
        self.owner: dict[int, int] = {}  # flat index -> item index
        flat = 0
        for index, pair in enumerate(is_pair):
            slot = (flat, flat + 1) if pair else (flat,)
            self.slots.append(slot)
            for f in slot:
                self.owner[f] = index
            flat += len(slot)

    def merge(self, flat: list[ItemResult]) -> list[ItemResult]:
        """One result per item, in order."""
        return [self._result(index, [flat[f] for f in slot]) for index, slot in enumerate(self.slots)]

    def streaming(self, emit: Callable[[ItemResult], None]) -> Callable[[ItemResult], None]:
        """An ``on_result`` for the flat items that emits each item's result once all its halves are in."""
        seen: dict[int, ItemResult] = {}

        def on_flat(r: ItemResult) -> None:
            seen[r.index] = r
            index = self.owner[r.index]
            slot = self.slots[index]
            if all(f in seen for f in slot):
                emit(self._result(index, [seen[f] for f in slot]))

        return on_flat

    @staticmethod
    def _result(index: int, halves: list[ItemResult]) -> ItemResult:
        if len(halves) == 1:
            return replace(halves[0], index=index)
        return pair_result(index, *halves)


def pair_result(index: int, chosen: ItemResult, rejected: ItemResult) -> ItemResult:
    """A pair's result from its halves' results."""
    c, r = chosen.judgment, rejected.judgment
    pair = PairScores(c.score, r.score, c.status, r.status)
    usage = Usage(c.usage.prompt_tokens + r.usage.prompt_tokens, c.usage.completion_tokens + r.usage.completion_tokens)
    notes = tuple(dict.fromkeys((*chosen.notes, *rejected.notes)))
    if c.score is not None and r.score is not None:
        judgment = Judgment(ItemStatus.ok, reward=sigmoid(c.score - r.score), score=c.score - r.score, pair=pair,
                            usage=usage, truncated_input=c.truncated_input or r.truncated_input)
    else:
        # The first half without a score decides the pair's status (a policy refusal, too_long, an error).
        name, failed = ("chosen", c) if c.score is None else ("rejected", r)
        judgment = Judgment(failed.status, pair=pair, usage=usage, truncated_input=failed.truncated_input,
                            message=f"the {name} response has no score: {failed.message or failed.status.value}")
    return ItemResult(index, chosen.id, judgment, cached=chosen.cached and rejected.cached, notes=notes)


def normalize_groups(results: list[ItemResult], items: Sequence[ScoreItem], groups: Sequence[str | None]
                     ) -> list[ItemResult]:
    """Each scored result's reward normalised over its group (module docstring); ``groups[i]`` is item i's
    group, None for its question."""
    members: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, r in enumerate(results):
        if r.judgment.score is not None and r.judgment.reward is not None:
            key = ("group", groups[i]) if groups[i] is not None else ("question", items[i].question)
            members[key].append(i)
    out = list(results)
    for indices in members.values():
        values = [results[i].judgment.reward for i in indices]
        n = len(values)
        mean = sum(values) / n
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
        for i, v in zip(indices, values, strict=True):
            normalized = (v - mean) / (std + GROUP_EPS) if n > 1 else 0.0
            out[i] = replace(results[i], judgment=replace(results[i].judgment, reward=normalized))
    return out
