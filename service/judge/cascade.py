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

Direct first (``direct_first``). A judge that can answer without thinking (Qwen3's ``enable_thinking:
false`` opens its answer with an empty ``<think>\n\n</think>``: the profile's ``[cascade] direct_open``)
is asked for its verdict alone first: one constrained token, its label probabilities from the logprobs
(``prob.py``). Where the judge is sure (the best label's probability >= ``direct_threshold``), that verdict
stands; otherwise the full thinking judgment decides, and its cost is the direct pass plus the thinking.
Each result's ``judge_pass`` says which decided; ``libra_direct_first_items_total`` and
``libra_direct_first_tokens_total`` count both passes.
"""

from __future__ import annotations

from enum import StrEnum

from service.judge.verifier import VerifyOutcome

TRUST_RULE = ("correct", "conclusive")
PASSES = ("direct", "thinking")  # direct-first: which pass decided (judge_pass)


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


def why_no_direct(p) -> str | None:
    """Why profile ``p``'s judge cannot be asked for a direct verdict (None: it can)."""
    from service.judge.prob import why_no_prob  # (prob imports profiles, which imports this module)

    if not p.direct_open:
        return (f"judge {p.name!r} declares no way to answer without thinking ([cascade] direct_open, e.g. "
                "Qwen3's empty <think></think>)")
    if not p.force_choices:
        return f"judge {p.name!r} has no verdict choices to constrain a direct verdict to ([force] choices)"
    return why_no_prob(p)


def direct_threshold_error(value: float) -> str | None:
    return None if 0.5 < value <= 1.0 else f"must be in (0.5, 1], not {value:g}"
