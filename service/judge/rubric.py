"""Rubric rewards: an item judged against a list of weighted criteria, the parts combined by rule.

    validate (rubric_error: bad input names the criterion) -> expand (RubricMap: per_criterion, one
    sub-item per criterion, the criterion last in the prompt; holistic, one sub-item with the whole list)
    -> the scorer judges the sub-items like any items (forcing, voting, the reward policy, dedup, cache,
    streaming all hold per criterion) -> merge (aggregate: the item's reward and its components)

A criterion (``Criterion``) has its text, a weight, an explicit **polarity** and optionally an id and a
**veto** flag. Polarity says what the judge's YES means: ``positive``, satisfying the criterion is good
("states the dose", "avoids jargon"); ``negative``, satisfying it is a pitfall committed ("recommends
surgery first"). The sign of a weight does not decide it: analysis of RaR's released rubrics found that
a negative weight means "avoided" in one domain and "committed" in the other, so a negative weight
without a polarity is refused. Weights count by their size.

RaR's rows (``{title, description, weight}``; "Rubrics as Rewards", arXiv 2507.17746, its released
datasets, e.g. ScaleAI/RaR-Science) are accepted as they are: the text is "title: description".

Aggregation, by rule and never by prompt (each criterion's value v is its judgment's reward in [0, 1],
the satisfied probability with ``reward_mode: prob``; g = v for a positive criterion, 1 - v for a
negative one):

- a failed **veto** criterion (g < 0.5) makes the reward 0, in every mode;
- ``weighted`` (default; RaR-Explicit's weighted sum over the positive weights): (sum of w*v over
  positive criteria - sum of w*v over negative ones) / (sum of positive weights), clipped to [0, 1];
- ``mean``: the mean of g; ``min``: the smallest g; ``all``: 1 if every g >= 0.99, else 0; ``any``: 1 if
  some g >= 0.99, else 0 (NeMo Gym's multichallenge modes, resources_servers/multichallenge/app.py,
  NVIDIA-NeMo/Gym at 07d6b0d0).

A criterion the judge could not decide (no verdict, an error, a timeout) leaves the item ``partial`` with
no reward and the decided parts in its components: never a silent 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from service.judge.subitems import SubItems, combined
from service.judge.types import VERDICT_STATUSES, ItemResult, ItemStatus, Judgment, ScoreItem

AGGREGATIONS = ("weighted", "mean", "min", "all", "any")
POLARITIES = ("positive", "negative")
PASS = 0.99  # all / any: a criterion counts as met at this value (NeMo Gym's threshold)


@dataclass(frozen=True)
class Criterion:
    text: str
    weight: float = 1.0
    polarity: str | None = None  # None: positive for a weight >= 0; refused for a negative weight
    id: str | None = None
    veto: bool = False

    @property
    def size(self) -> float:
        return abs(self.weight)

    @property
    def positive(self) -> bool:
        return (self.polarity or "positive") == "positive"


@dataclass(frozen=True)
class Component:
    """One criterion's part of an item's result."""

    index: int
    criterion: Criterion
    judgment: Judgment | None  # None: holistic (one rating for the list)


def name(c: Criterion, i: int) -> str:
    """How a message names criterion ``i``: its id, else its position."""
    return f"criterion {c.id!r}" if c.id is not None else f"criterion {i}"


def rubric_error(criteria: Sequence[Criterion], limit: int) -> str | None:
    """Why this rubric cannot be judged (the message names the criterion), or None."""
    if not criteria:
        return "the rubric is empty: give at least one criterion"
    if len(criteria) > limit:
        return f"the rubric has {len(criteria)} criteria; this server's limit is {limit} (GET /limits)"
    seen: set[str] = set()
    for i, c in enumerate(criteria):
        if not c.text.strip():
            return f"{name(c, i)} has empty text"
        if c.id is not None:
            if c.id in seen:
                return f"{name(c, i)}: the id is used twice in the rubric"
            seen.add(c.id)
        if c.weight < 0 and c.polarity is None:
            return (f"{name(c, i)} has weight {c.weight:g} and no polarity: say whether satisfying it is good "
                    "('avoids X': positive) or a pitfall committed ('does X': negative); a weight's sign does "
                    "not say it (RaR's rubrics use it both ways)")
    if sum(c.size for c in criteria if c.positive) == 0:
        return "the positive criteria's weights sum to zero: there is nothing for the reward to be a share of"
    return None


def holistic_text(criteria: Sequence[Criterion]) -> str:
    """The whole rubric as one list for a holistic judge: one criterion per line with its weight, pitfalls
    and vetoes marked (the judge rates the response against all of it at once)."""
    lines = []
    for i, c in enumerate(criteria, 1):
        kind = "Pitfall (must not happen)" if not c.positive else "Criterion"
        veto = ", required" if c.veto else ""
        lines.append(f"{i}. {kind} (weight {c.size:g}{veto}): {c.text}")
    return "\n".join(lines)


def aggregate(criteria: Sequence[Criterion], values: Sequence[float], how: str) -> float:
    """The item's reward from each criterion's value (module docstring)."""
    good = [v if c.positive else 1.0 - v for c, v in zip(criteria, values, strict=True)]
    if any(c.veto and g < 0.5 for c, g in zip(criteria, good, strict=True)):
        return 0.0
    if how == "weighted":
        total = sum(c.size for c in criteria if c.positive)
        earned = sum(c.size * v if c.positive else -c.size * v for c, v in zip(criteria, values, strict=True))
        return min(1.0, max(0.0, earned / total))
    if how == "mean":
        return sum(good) / len(good)
    if how == "min":
        return min(good)
    if how == "all":
        return 1.0 if all(g >= PASS for g in good) else 0.0
    if how == "any":
        return 1.0 if any(g >= PASS for g in good) else 0.0
    raise ValueError(f"aggregation must be one of {AGGREGATIONS}, not {how!r}")


class RubricMap(SubItems):
    """A request's items expanded for the scorer and merged back: per_criterion, one sub-item per criterion
    (the criterion last in the prompt, so a response's criteria share its prefix in vLLM's cache); holistic,
    one sub-item per item with the whole list. Items whose rubric is refused have none: decided now. A rubric
    given as a string is the reason the caller could not read one (a trainer's label that is no rubric)."""

    def __init__(self, items: Sequence[ScoreItem], rubrics: Sequence[Sequence[Criterion] | str | None], strategy: str,
                 how: str, limit: int):
        super().__init__()
        self.strategy, self.how = strategy, how
        self.rubrics = [[] if r is None or isinstance(r, str) else list(r) for r in rubrics]
        self.items = list(items)
        self.flat: list[ScoreItem] = []
        self.refused: dict[int, str] = {}
        for index, (item, given, rubric) in enumerate(zip(items, rubrics, self.rubrics, strict=True)):
            why = ("the item has no rubric, and the request none for it" if given is None
                   else given if isinstance(given, str) else rubric_error(rubric, limit))
            if why is not None:
                self.refused[index] = why
                self._add(0)
                continue
            texts = [c.text for c in rubric] if strategy == "per_criterion" else [holistic_text(rubric)]
            self.flat += [replace(item, criterion=t) for t in texts]
            self._add(len(texts))

    def _result(self, index: int, parts: list[ItemResult]) -> ItemResult:
        item, rubric = self.items[index], self.rubrics[index]
        if index in self.refused:
            return ItemResult(index, item.id, Judgment(ItemStatus.invalid, message=self.refused[index]))
        usage, notes, cached = combined(parts)
        prompt = parts[0].prompt if len(parts) == 1 else None
        if self.strategy == "holistic":
            [part] = parts
            j = replace(part.judgment, components=[Component(i, c, None) for i, c in enumerate(rubric)],
                        usage=usage)
            return ItemResult(index, item.id, j, cached=cached, prompt=prompt, notes=notes)
        components = [Component(i, c, p.judgment) for i, (c, p) in enumerate(zip(rubric, parts, strict=True))]
        undecided = [(i, c, p.judgment) for i, (c, p) in enumerate(zip(rubric, parts, strict=True))
                     if p.judgment.status not in VERDICT_STATUSES or p.judgment.reward is None]
        truncated = any(p.judgment.truncated_input for p in parts)
        if undecided:
            i, c, j = undecided[0]
            # Decided by the reward policy for the whole response (the same for every criterion): its status.
            policy = {ItemStatus.no_answer, ItemStatus.degenerate, ItemStatus.too_long, ItemStatus.invalid}
            if len(undecided) == len(parts) and all(u[2].status == j.status for u in undecided) and j.status in policy:
                return ItemResult(index, item.id, Judgment(j.status, reward=None, message=j.message, usage=usage,
                                                           components=components, truncated_input=truncated),
                                  cached=cached, notes=notes)
            message = (f"{len(undecided)} of {len(parts)} criteria undecided; first: {name(c, i)}: {j.status.value}"
                       + (f" ({j.message})" if j.message else ""))
            return ItemResult(index, item.id, Judgment(ItemStatus.partial, message=message, usage=usage,
                                                       components=components, truncated_input=truncated),
                              cached=cached, notes=notes)
        values = [p.judgment.reward for p in parts]
        forced = any(p.judgment.status == ItemStatus.forced for p in parts)
        j = Judgment(ItemStatus.forced if forced else ItemStatus.ok, reward=aggregate(rubric, values, self.how),
                     usage=usage, components=components, truncated_input=truncated,
                     message="a criterion's thinking budget ran out; its verdict was forced" if forced else None)
        return ItemResult(index, item.id, j, cached=cached, notes=notes)


def component_key(id: str | None, index: int) -> str:
    """A criterion's key where trainers get components by name (NeMo Gym's reward_components, slime's dict):
    its id, else ``criterion_<index>``."""
    return id if id is not None else f"criterion_{index}"


RUBRIC_LOG_KEYS = ("rubric_met", "rubric_pitfalls", "rubric_veto_failed")


def trainer_logs(components: Sequence[Component] | None) -> dict[str, float]:
    """What a trainer logs of a rubric item, as numbers every sample has (trainers take their log keys from
    the first sample): the share of decided criteria met (a pitfall counts as met when avoided), the
    pitfalls committed, and 1.0 when a veto criterion failed; zeros for an item without components."""
    decided = [(c.criterion, c.judgment.reward) for c in components or ()
               if c.judgment is not None and c.judgment.reward is not None]
    good = [v if c.positive else 1.0 - v for c, v in decided]
    return {"rubric_met": sum(g >= 0.5 for g in good) / len(good) if good else 0.0,
            "rubric_pitfalls": float(sum(not c.positive and v >= 0.5 for c, v in decided)),
            "rubric_veto_failed": float(any(c.veto and g < 0.5 for (c, _), g in zip(decided, good, strict=True)))}


def criteria_met(components: Sequence[Component] | None) -> dict[str, float | None]:
    """Each criterion, by its key (``component_key``): 1.0 when met (a pitfall: avoided), 0.0 when not, None
    when undecided."""
    out: dict[str, float | None] = {}
    for c in components or ():
        v = c.judgment.reward if c.judgment is not None else None
        out[component_key(c.criterion.id, c.index)] = (
            None if v is None else float((v if c.criterion.positive else 1.0 - v) >= 0.5))
    return out
