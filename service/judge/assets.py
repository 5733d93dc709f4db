"""What a profile needs on one tokenizer, built on first use and kept: the one owner of per-profile caches.

    renderer (the profile's template, with or without a reference) | closing ids (what a forced
    verdict appends) | force overhead (those ids plus the longest choice) | label texts (for the
    labels' probabilities; None where they cannot be read)

Preparing (budgets, prompts) and judging (forcing, probabilities) share one ``ProfileAssets`` per
engine, so each asset is built once and every cache is keyed the same way, by ``Profile.key``.
"""

from __future__ import annotations

from typing import Any

from service.judge.prob import label_texts, why_no_prob
from service.judge.profiles import Profile
from service.judge.prompts import PlainEncoder, PromptRenderer


class ProfileAssets:
    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        # One plain-text copy of the tokenizer for every profile, built now: for a 151k vocabulary that
        # takes a second or two, which the first request should not pay.
        self.encoder = PlainEncoder(tokenizer)
        self._renderers: dict[tuple[str, bool], PromptRenderer] = {}
        self._closings: dict[tuple[str, bool], list[int]] = {}
        self._directs: dict[str, list[int]] = {}
        self._force_overheads: dict[str, int] = {}
        self._label_texts: dict[str, dict[str, str] | None] = {}

    def renderer(self, p: Profile, has_reference: bool) -> PromptRenderer:
        key = (p.key, has_reference)
        r = self._renderers.get(key)
        if r is None:
            if p.prompt is not None:
                r = PromptRenderer(self.tokenizer, raw_prompt=p.prompt_for(has_reference), encoder=self.encoder)
            else:
                r = PromptRenderer(self.tokenizer, p.messages_for(has_reference), encoder=self.encoder,
                                   generation_prompt=not p.scalar)
            self._renderers[key] = r
        return r

    def closing_ids(self, p: Profile, closed: bool) -> list[int]:
        """What a forced verdict appends before the choice: the end-of-thinking marker (unless the judge
        already wrote it) and the profile's prefix (template text: markup such as ``</think>`` is meant
        to be its control token here)."""
        key = (p.key, closed)
        if key not in self._closings:
            closing = ("" if closed else (p.think_end or "")) + (p.force_prefix or "")
            self._closings[key] = self.tokenizer.encode(closing, add_special_tokens=False) if closing else []
        return self._closings[key]

    def direct_ids(self, p: Profile) -> list[int]:
        """What a direct verdict appends to the prompt before the choice: the judge's no-thinking opening
        (``[cascade] direct_open``, template text like the closing) and the force prefix."""
        if p.key not in self._directs:
            self._directs[p.key] = self.tokenizer.encode((p.direct_open or "") + (p.force_prefix or ""),
                                                         add_special_tokens=False)
        return self._directs[p.key]

    @staticmethod
    def choice_room(p: Profile) -> int:
        """max_tokens of a forced verdict's request: the longest choice. A constrained decoder may spell
        a choice with any tokens that form it, down to one per byte (a random or unsure model does):
        budget the bytes, or the verdict is cut mid-word."""
        return max(len(c.encode("utf-8")) for c in p.force_choices) + 1

    @staticmethod
    def choice_by_first_char(p: Profile) -> dict[str, str] | None:
        """first character -> choice, when the choices begin with different characters (``correct}`` /
        ``incorrect}``, ``YES]]`` / ``NO]]``): a constrained decoder's first token then names the choice, and
        the rest of it is forced, so a direct verdict needs one generated token. None otherwise."""
        firsts = {c[:1]: c for c in p.force_choices}
        return firsts if len(firsts) == len(p.force_choices) and "" not in firsts else None

    def force_overhead(self, p: Profile) -> int:
        """Tokens a forced verdict appends (closing marker, prefix, longest choice)."""
        if p.key not in self._force_overheads:
            self._force_overheads[p.key] = len(self.closing_ids(p, closed=False)) + self.choice_room(p)
        return self._force_overheads[p.key]

    def label_texts(self, p: Profile) -> dict[str, str] | None:
        """label -> the text the judge writes for it; None when the labels cannot be told apart by one
        token (``prob.why_no_prob``)."""
        if p.key not in self._label_texts:
            self._label_texts[p.key] = None if why_no_prob(p) else label_texts(p)
        return self._label_texts[p.key]
