"""The reward policy: what a response must show before a verdict may pay, and what a forced verdict pays.

A policy under RL searches for whatever the judge rewards, junk included (a response of 199,999 ``1``
cut to fit the context, then given a verdict forced out of a judge that never finished thinking; the
"master keys" of arXiv 2507.08794, a bare ``:`` or "Thought process:", which drew false-positive rates
up to 80-90% from real LLM judges). These checks run before any engine work, so they cost nothing on
the GPU and protect any judge, however easily fooled:

- ``answer``: the answer-presence check. ``none``; ``final_answer`` (a non-empty ``\\boxed{...}`` or
  ``Final Answer:``-style line, ``extract.py``); ``math`` (that, or else the response's last number).
  The answer found must hold a letter or a digit. A response without one gets status ``no_answer``.
- ``hedged``: what a response that names more than one candidate final answer gets ("The answer is 405,
  or possibly 406", two different ``\\boxed{}`` answers; the rule and its limits: ``hedging.py``), where
  the ``answer`` check is on: ``no_answer`` (status ``no_answer``, the candidates in its message) or
  ``judge`` (judged like any other response).
- ``max_repetition``: a response of at least ``REPETITION_MIN_CHARS`` whose zlib compression ratio is
  above this is ``degenerate`` (a repetition loop: natural prose and worked solutions compress 2-4x; a
  number spammed 5,000 times compresses 350x). ``0`` turns it off.
- ``truncated``: ``answer_seen`` (a response cut to fit the context is judged only when its final
  answer, located as under ``math`` if the check is ``none``, lies whole in the part the judge sees;
  otherwise ``too_long``) or ``judge`` (judge whatever is left).
- ``forced``: the reward of a verdict forced past the thinking budget: ``None`` (written ``"verdict"``)
  pays the forced label's reward; a number pays that instead.

A profile sets its defaults in ``[policy]``; ``POST /score`` may override any of them per request.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, fields, replace
from typing import Any

from service.judge.extract import final_answer_span
from service.judge.hedging import hedged_candidates

ANSWER_CHECKS = ("none", "final_answer", "math")
HEDGED_POLICIES = ("no_answer", "judge")
TRUNCATED_POLICIES = ("answer_seen", "judge")
REPETITION_MIN_CHARS = 256  # shorter texts cannot compress much whatever they hold

# The checks that act before any engine work: an item they stop is decided early (never cached), and an
# item they let through is judged the same whatever they say. The rest of a policy is in the cache key.
_DECIDED_BEFORE_THE_ENGINE = ("answer", "hedged", "truncated", "max_repetition")

_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?")
_WORDLIKE = re.compile(r"\w")


@dataclass(frozen=True)
class RewardPolicy:
    answer: str = "none"
    hedged: str = "no_answer"  # applies where answer is not "none"
    truncated: str = "answer_seen"
    forced: float | None = None  # None: the forced verdict's own reward
    max_repetition: float = 8.0

    def __post_init__(self) -> None:
        if self.answer not in ANSWER_CHECKS:
            raise ValueError(f"policy answer must be one of {ANSWER_CHECKS}, not {self.answer!r}")
        if self.hedged not in HEDGED_POLICIES:
            raise ValueError(f"policy hedged must be one of {HEDGED_POLICIES}, not {self.hedged!r}")
        if self.truncated not in TRUNCATED_POLICIES:
            raise ValueError(f"policy truncated must be one of {TRUNCATED_POLICIES}, not {self.truncated!r}")
        if self.max_repetition != 0 and self.max_repetition < 1:
            raise ValueError(f"policy max_repetition must be 0 (off) or at least 1, not {self.max_repetition}")

    @classmethod
    def parse(cls, data: dict[str, Any], base: RewardPolicy | None = None) -> RewardPolicy:
        """A policy from a profile's ``[policy]`` table or a request's ``policy`` object, over ``base``."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown policy field(s) {sorted(unknown)}; known: {sorted(known)}")
        values = {k: v for k, v in data.items() if v is not None}
        if "forced" in values:
            forced = values["forced"]
            if forced == "verdict":
                values["forced"] = None
            elif isinstance(forced, bool) or not isinstance(forced, int | float):
                raise ValueError(f'policy forced must be "verdict" or a number, not {forced!r}')
            else:
                values["forced"] = float(forced)
        if "max_repetition" in values:
            values["max_repetition"] = float(values["max_repetition"])
        return replace(base or cls(), **values)

    def key_parts(self) -> tuple:
        """This policy's part of the judgment key: the fields not in ``_DECIDED_BEFORE_THE_ENGINE``."""
        return tuple(getattr(self, f.name) for f in fields(self) if f.name not in _DECIDED_BEFORE_THE_ENGINE)

    def describe(self) -> dict[str, Any]:
        return {"answer": self.answer, "hedged": self.hedged, "truncated": self.truncated,
                "forced": "verdict" if self.forced is None else self.forced, "max_repetition": self.max_repetition}


def answer_span(text: str, rule: str) -> tuple[int, int] | None:
    """Where the response's final answer lies under ``rule`` (``final_answer`` or ``math``), or None."""
    span = final_answer_span(text)
    if span is None and rule == "math":
        numbers = list(_NUMBER.finditer(text))
        span = numbers[-1].span() if numbers else None
    if span is None or not _WORDLIKE.search(text, span[0], span[1]):
        return None
    return span


def hedge(text: str, question: str, policy: RewardPolicy) -> tuple[str, ...] | None:
    """The different final answers a hedged response names, where the policy refuses hedges; else None."""
    if policy.answer == "none" or policy.hedged != "no_answer":
        return None
    return hedged_candidates(text, question)


def repetition(text: str) -> float:
    """How many times over zlib compresses the text (1.0 for texts too short to tell)."""
    if len(text) < REPETITION_MIN_CHARS:
        return 1.0
    data = text.encode("utf-8", "surrogatepass")
    return len(data) / len(zlib.compress(data, 6))


def answer_seen(text: str, kept: list[tuple[int, int]], policy: RewardPolicy) -> bool:
    """Whether the final answer of ``text`` lies whole in one of the ``kept`` character ranges."""
    span = answer_span(text, "math" if policy.answer == "none" else policy.answer)
    return span is not None and any(start <= span[0] and span[1] <= end for start, end in kept)
