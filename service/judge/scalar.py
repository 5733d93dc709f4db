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
from collections.abc import Sequence
from dataclasses import replace

from service.judge.judging import sigmoid
from service.judge.subitems import SubItems, combined
from service.judge.types import ItemResult, ItemStatus, Judgment, PairScores, ScoreItem

GROUP_EPS = 1e-4  # TRL GRPO's epsilon under the group's std


class PairMap(SubItems):
    """The flat items of a request (a pair is two: chosen, then rejected) mapped back to its items."""

    def __init__(self, is_pair: Sequence[bool]):
        super().__init__()
        for pair in is_pair:
            self._add(2 if pair else 1)

    def _result(self, index: int, parts: list[ItemResult]) -> ItemResult:
        if len(parts) == 1:
            return replace(parts[0], index=index)
        return pair_result(index, *parts)


def pair_result(index: int, chosen: ItemResult, rejected: ItemResult) -> ItemResult:
    """A pair's result from its halves' results."""
    c, r = chosen.judgment, rejected.judgment
    pair = PairScores(c.score, r.score, c.status, r.status)
    usage, notes, cached = combined([chosen, rejected])
    if c.score is not None and r.score is not None:
        judgment = Judgment(ItemStatus.ok, reward=sigmoid(c.score - r.score), score=c.score - r.score, pair=pair,
                            usage=usage, truncated_input=c.truncated_input or r.truncated_input)
    else:
        # The first half without a score decides the pair's status (a policy refusal, too_long, an error).
        name, failed = ("chosen", c) if c.score is None else ("rejected", r)
        judgment = Judgment(failed.status, pair=pair, usage=usage, truncated_input=failed.truncated_input,
                            message=f"the {name} response has no score: {failed.message or failed.status.value}")
    return ItemResult(index, chosen.id, judgment, cached=cached, notes=notes)


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
