"""Preparation: from items to prompt token ids, before any engine work.

    clamp the output budgets to the context -> encode every distinct text once -> render each item
    (token-safe) -> truncate an over-long response or decide ``too_long`` / ``invalid`` -> judgment key

A ``Preparer`` belongs to one engine (its tokenizer and context length) and caches what depends only
on a profile: the rendered template and the tokens a forced verdict appends.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import Any

from service.judge.cache import judgment_key
from service.judge.profiles import Profile
from service.judge.prompts import PlainEncoder, PromptRenderer
from service.judge.types import ItemStatus, JudgeOptions, Judgment, ScoreItem

TRUNCATION_MARK = "\n[...]\n"
ENCODE_INLINE_CHARS = 64 * 1024  # requests with more text than this are tokenized off the event loop


@dataclass
class Prepared:
    """One item ready for the engine (``ids``, ``key``), or decided without it (``early``)."""

    index: int
    item: ScoreItem
    ids: list[int] | None = None
    key: str | None = None
    early: Judgment | None = None  # invalid / too_long: decided without the engine
    truncated_input: bool = False
    prompt: list[dict[str, str]] | None = None


class Preparer:
    def __init__(self, tokenizer: Any, max_model_len: int | None, model_name: str):
        self.tokenizer = tokenizer
        self.max_model_len = max_model_len
        self.model_name = model_name
        self._renderers: dict[tuple[str, bool], PromptRenderer] = {}
        self._encoder: PlainEncoder | None = None  # one plain-text copy of the tokenizer for every profile
        self._force_overheads: dict[str, int] = {}

    @property
    def encoder(self) -> PlainEncoder:
        """The plain-text copy of the tokenizer, built on first use and shared by every profile."""
        if self._encoder is None:
            self._encoder = PlainEncoder(self.tokenizer)
        return self._encoder

    def renderer(self, profile: Profile, has_reference: bool) -> PromptRenderer:
        key = (profile.source or profile.name, has_reference)
        r = self._renderers.get(key)
        if r is None:
            if profile.prompt is not None:
                r = PromptRenderer(self.tokenizer, raw_prompt=profile.prompt_for(has_reference), encoder=self.encoder)
            else:
                r = PromptRenderer(self.tokenizer, profile.messages_for(has_reference), encoder=self.encoder)
            self._renderers[key] = r
        return r

    # -- output budgets --------------------------------------------------------------------------

    def clamp(self, opts: JudgeOptions) -> JudgeOptions:
        """Fit the output budgets to the model's context (a profile's defaults may exceed it)."""
        if self.max_model_len is None or opts.max_tokens < self.max_model_len:
            return opts
        max_tokens = self.max_model_len - 1
        budget = opts.max_thinking_tokens
        budget = None if budget is None else min(budget, max_tokens)
        return replace(opts, max_tokens=max_tokens, max_thinking_tokens=budget)

    def force_overhead(self, opts: JudgeOptions) -> int:
        """Tokens a forced verdict appends (closing marker, prefix, longest choice); once per profile."""
        if not opts.forcing:
            return 0
        p = opts.profile
        key = p.source or p.name
        if key not in self._force_overheads:
            tok = self.tokenizer
            closing = len(tok.encode((p.think_end or "") + (p.force_prefix or ""), add_special_tokens=False))
            longest = max(len(tok.encode(c, add_special_tokens=False)) for c in p.force_choices)
            self._force_overheads[key] = closing + longest + 1
        return self._force_overheads[key]

    @staticmethod
    def first_cap(opts: JudgeOptions) -> int:
        """max_tokens of the first generation: the thinking budget when forcing is on."""
        if opts.forcing:
            return max(1, min(opts.max_tokens, opts.max_thinking_tokens))
        return opts.max_tokens

    @staticmethod
    def answer_room(opts: JudgeOptions) -> int:
        """Tokens a judge that closed its thinking within the budget gets to finish its answer."""
        return int(opts.profile.sampling.get("answer_tokens", 64)) if opts.forcing else 0

    def output_room(self, opts: JudgeOptions) -> int:
        """Context a judgment needs beyond its prompt (same for every item of a request)."""
        return self.first_cap(opts) + max(self.answer_room(opts), self.force_overhead(opts))

    # -- items -----------------------------------------------------------------------------------

    async def encode_texts(self, items: list[ScoreItem]) -> dict[str, list[int]]:
        """Every distinct text of the request encoded in one batch (a GRPO group's question once). A
        large batch is encoded in a worker thread: the tokenizer releases the GIL, so the event loop
        keeps serving other requests meanwhile."""
        texts = list({t: None for item in items for t in (item.question, item.response, item.reference) if t})
        if sum(map(len, texts)) < ENCODE_INLINE_CHARS:
            ids = self.encoder.encode_batch(texts)
        else:
            ids = await asyncio.to_thread(self.encoder.encode_batch, texts)
        return dict(zip(texts, ids, strict=True))

    def prepare(self, index: int, item: ScoreItem, opts: JudgeOptions, need: int,
                encoded: dict[str, list[int]] | None = None) -> Prepared:
        """Render one item; ``need`` is the context its judgment needs beyond the prompt."""
        p = opts.profile
        prep = Prepared(index, item)
        has_ref = item.reference is not None and item.reference != ""
        if p.reference == "required" and not has_ref:
            prep.early = Judgment(ItemStatus.invalid, message=f"judge {p.name!r} needs a reference for every item")
            return prep
        renderer = self.renderer(p, has_ref and p.reference != "unused")
        ids, (start, end) = renderer.render_parts(item.question, item.response, item.reference, encoded=encoded)
        if self.max_model_len is not None and len(ids) + need > self.max_model_len:
            room = self.max_model_len - need - (len(ids) - (end - start))
            mark = renderer.encode_text(TRUNCATION_MARK)
            if p.truncate == "none" or room < len(mark) + 16:
                prep.early = Judgment(ItemStatus.too_long, message=(
                    f"the prompt is {len(ids)} tokens; with {need} tokens for the judge's output it exceeds "
                    f"the model's context of {self.max_model_len} tokens"))
                return prep
            cut = truncate(ids[start:end], room, mark, p.truncate)
            ids, _ = renderer.render_parts(item.question, item.response, item.reference, response_ids=cut,
                                           encoded=encoded)
            prep.truncated_input = True
            if opts.return_prompt:
                prep.prompt = renderer.fill(item.question, self.tokenizer.decode(cut), item.reference)
        if opts.return_prompt and prep.prompt is None:
            prep.prompt = renderer.fill(item.question, item.response, item.reference)
        prep.ids = ids
        prep.key = judgment_key(p.source or p.name, self.model_name, opts.samples, opts.temperature, opts.top_p,
                                opts.max_tokens, opts.max_thinking_tokens if opts.forcing else None, opts.seed,
                                opts.return_reasoning, item.question, item.response,
                                item.reference if p.reference != "unused" else None)
        return prep


def truncate(ids: list[int], room: int, mark: list[int], mode: str) -> list[int]:
    """``ids`` cut to ``room`` tokens with ``mark`` where text was dropped (head/tail/middle kept)."""
    keep = room - len(mark)
    if mode == "head":
        return ids[:keep] + mark
    if mode == "tail":
        return mark + ids[len(ids) - keep:]
    head = keep // 2
    return ids[:head] + mark + ids[len(ids) - (keep - head):]
