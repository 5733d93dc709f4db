"""An item that is more than one judgment: its sub-items go to the scorer, and their results come back as
one result per item. Pairs (``scalar.PairMap``: chosen, rejected) and rubrics (``rubric.RubricMap``: one
sub-item per criterion) are the two kinds; what a kind adds is how its sub-items' results combine
(``_result``).

An item may have no sub-items at all (a rubric refused before any judging): its result is decided now
(``decided_now``) and ``_result`` gets no parts for it.
"""

from __future__ import annotations

from collections.abc import Callable

from service.judge.types import ItemResult, Usage


class SubItems:
    def __init__(self) -> None:
        self.slots: list[tuple[int, ...]] = []  # item index -> its sub-items' indices in the flat list
        self.owner: dict[int, int] = {}  # sub-item index -> item index
        self._flat = 0

    def _add(self, count: int) -> None:
        """The next item's ``count`` sub-items (0: decided without judging)."""
        slot = tuple(range(self._flat, self._flat + count))
        for f in slot:
            self.owner[f] = len(self.slots)
        self.slots.append(slot)
        self._flat += count

    def _result(self, index: int, parts: list[ItemResult]) -> ItemResult:
        raise NotImplementedError

    def decided_now(self) -> list[ItemResult]:
        """The results of the items with no sub-items (known before any judging)."""
        return [self._result(i, []) for i, slot in enumerate(self.slots) if not slot]

    def merge(self, flat: list[ItemResult]) -> list[ItemResult]:
        """One result per item, in order, from the sub-items' results."""
        return [self._result(i, [flat[f] for f in slot]) for i, slot in enumerate(self.slots)]

    def streaming(self, emit: Callable[[ItemResult], None]) -> Callable[[ItemResult], None]:
        """An ``on_result`` for the sub-items that emits each item's result once all its parts are in."""
        seen: dict[int, ItemResult] = {}

        def on_flat(r: ItemResult) -> None:
            seen[r.index] = r
            index = self.owner[r.index]
            if all(f in seen for f in self.slots[index]):
                emit(self._result(index, [seen[f] for f in self.slots[index]]))

        return on_flat


def combined(parts: list[ItemResult]) -> tuple[Usage, tuple, bool]:
    """What an item's parts add up to: their usage, their notes (each once, in order), and whether all were
    answered without engine work."""
    usage = Usage(sum(p.judgment.usage.prompt_tokens for p in parts),
                  sum(p.judgment.usage.completion_tokens for p in parts))
    return usage, tuple(dict.fromkeys(n for p in parts for n in p.notes)), all(p.cached for p in parts)
