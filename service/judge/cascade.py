"""Cascades: a cheap decision first, the thinking judge only where the cheap one cannot be trusted.

Rule first (``mode: hybrid``). math-verify checks the response against the item's reference; which of
its outcomes stands without the judge is the options' ``trust_rule``:

- ``correct`` (the default): only an accepted answer stands. Rules fail in one direction: they reject
  correct answers written in another form (an equivalent expression, a reordered tuple, an interval
  written as an inequality, a unit, a word) far more often than they accept wrong ones. TinyV (arXiv
  2505.14625) measured over 38% of Big-Math's rule rejections to be false negatives, and its cascade
  asks the model verifier only when the rule says wrong; docs/api.md has our own measurement.
- ``conclusive``: the rule's ``correct`` and ``incorrect`` both stand (what ``hybrid`` did before
  this option existed: it asks the judge least, and trusts the rule's rejections).

An inconclusive, timed-out or failed check, and an item without a reference, always go to the judge.
Each item's ``route`` says which way it went; ``libra_cascade_items_total`` counts them.
"""

from __future__ import annotations

from enum import StrEnum

from service.judge.verifier import VerifyOutcome

TRUST_RULE = ("correct", "conclusive")


class Route(StrEnum):
    """Which step of a cascade decided an item's reward (and why the judge was asked, where it was)."""

    rule_correct = "rule_correct"  # the rule accepted the answer; it stands
    rule_incorrect = "rule_incorrect"  # the rule rejected it, and trust_rule = conclusive let that stand
    judge_rule_incorrect = "judge_rule_incorrect"  # the rule rejected it; the judge decided
    judge_rule_inconclusive = "judge_rule_inconclusive"  # no verdict from the rule (nothing parsed, timeout, error)
    judge_no_reference = "judge_no_reference"  # nothing to check against; the judge decided


RULE_DECIDES = frozenset({Route.rule_correct, Route.rule_incorrect})


def rule_first_route(outcome: VerifyOutcome | None, trust_rule: str) -> Route:
    """Where an item goes in ``hybrid``: ``outcome`` is its check (None: it had no reference)."""
    if trust_rule not in TRUST_RULE:
        raise ValueError(f"trust_rule must be one of {TRUST_RULE}, not {trust_rule!r}")
    if outcome is None:
        return Route.judge_no_reference
    if outcome.status == "correct":
        return Route.rule_correct
    if outcome.status == "incorrect":
        return Route.rule_incorrect if trust_rule == "conclusive" else Route.judge_rule_incorrect
    return Route.judge_rule_inconclusive
