"""Probability rewards: the judge's own probability of each verdict label, read at the verdict position.

A 0/1 verdict throws away how sure the judge was. Where the judge wrote its label (or where a forced
verdict's label begins), the engine's next-token distribution over the tokens that start each label,
normalised over the labels, is the judge's belief in each verdict:

    P(label) = sum of P(t) over top tokens t whose text starts that label / the same over all labels

- Each label's text is what the judge writes for it: a forced choice (``correct}``), else the label
  itself (``yes``). Profiles whose label texts do not all differ in their first character (a numeric
  judge's ``1`` and ``10``) cannot be told apart at one position: ``prob`` is refused for them.
- vLLM returns raw log-probabilities by default (``logprobs_mode = raw_logprobs``: before temperature
  and other processors). Under a forced verdict's structured output, tokens outside the choices are
  masked first, which leaves the ratio between the labels' tokens unchanged.
- A token that covers text before the label (``{correct`` after ``\\boxed``) is read past that ``gap``.
"""

from __future__ import annotations

import math
import re
from typing import Any

from service.judge.profiles import Profile
from service.judge.verdict import parse_verdict

TOP_LOGPROBS = 20  # vLLM's default max_logprobs


def label_texts(p: Profile) -> dict[str, str]:
    """label -> the text the judge writes for it."""
    if p.force_choices:
        texts = {}
        for choice in p.force_choices:
            label = parse_verdict((p.think_end or "") + (p.force_prefix or "") + choice, p.think_end,
                                  p.verdict_pattern).label
            texts.setdefault(p.label_of(label), choice)
        return texts
    return {label: label for label in p.rewards}


def why_no_prob(p: Profile) -> str | None:
    """Why ``prob`` cannot be read for this profile (None: it can)."""
    if p.score_range is not None:
        return f"judge {p.name!r} gives a number, not a label; its scores cannot be told apart by one token"
    firsts = [t[:1].lower() for t in label_texts(p).values()]
    if len(set(firsts)) != len(firsts) or "" in firsts:
        return f"judge {p.name!r}'s labels cannot be told apart by their first character"
    return None



def label_start(text: str, p: Profile) -> int | None:
    """Where the verdict's label begins in the generated ``text`` (the last match after the thinking),
    read on the text as generated; None when only a normalised reading finds it."""
    offset = 0
    if p.think_end:
        at = text.rfind(p.think_end)
        if at < 0:
            return None
        offset = at + len(p.think_end)
    matches = list(re.finditer(p.verdict_pattern, text[offset:], re.IGNORECASE))
    if not matches:
        return None
    last = matches[-1]
    group = next((i for i in range(1, (last.lastindex or 0) + 1) if last.group(i)), None)
    return None if group is None else offset + last.start(group)


def token_boundary(tokenizer: Any, token_ids: list[int], text: str, pos: int) -> tuple[int, str] | None:
    """(n, gap): the most tokens whose decoded text ends at or before ``pos``, and the text between
    their end and ``pos`` (which the next token covers)."""
    lo, hi = 0, len(token_ids)
    while lo < hi:  # the largest n with len(decode(ids[:n])) <= pos
        mid = (lo + hi + 1) // 2
        if len(tokenizer.decode(token_ids[:mid], skip_special_tokens=True)) <= pos:
            lo = mid
        else:
            hi = mid - 1
    head = tokenizer.decode(token_ids[:lo], skip_special_tokens=True)
    if not text.startswith(head):
        return None
    return lo, text[len(head):pos]


def label_probs(tokenizer: Any, first_logprobs: dict[int, float] | None, texts: dict[str, str], gap: str = ""
                ) -> dict[str, float] | None:
    """The labels' normalised probabilities from one position's top log-probabilities, or None when
    none of the top tokens starts a label."""
    if not first_logprobs:
        return None
    by_first = {text[:1].lower(): label for label, text in texts.items()}
    mass = dict.fromkeys(texts, 0.0)
    for token_id, logprob in first_logprobs.items():
        piece = tokenizer.decode([token_id], skip_special_tokens=True)
        if gap:
            if not piece.startswith(gap):
                continue
            piece = piece[len(gap):]
        label = by_first.get(piece[:1].lower()) if piece else None
        if label is not None and math.isfinite(logprob):
            mass[label] += math.exp(logprob)
    total = sum(mass.values())
    return None if total <= 0 else {label: m / total for label, m in mass.items()}


def expected_reward(p: Profile, probs: dict[str, float]) -> float:
    return sum(q * p.reward_for(label) for label, q in probs.items())


def positive_prob(p: Profile, probs: dict[str, float]) -> float:
    """The probability of the best-rewarded label(s): the judge's belief that the response is right."""
    best = max(p.reward_for(label) for label in probs)
    return sum(q for label, q in probs.items() if p.reward_for(label) == best)
