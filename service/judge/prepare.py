"""Preparation: from items to prompt token ids, before any engine work.

    clamp the output budgets to the context -> the reward policy's checks (no_answer, hedged,
    degenerate; policy.py) -> render each item (its field spans encoded in one batch, token-safe) -> cut an
    over-long response as text and re-render, or decide ``too_long`` / ``invalid`` -> judgment key

A ``Preparer`` belongs to one engine (its context length and model name); what depends only on a
profile and the tokenizer (the rendered template, the tokens a forced verdict appends) comes from the
``ProfileAssets`` it shares with the judging (assets.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from service.judge.assets import ProfileAssets
from service.judge.cache import judgment_key
from service.judge.extract import shown_response
from service.judge.hedging import shown
from service.judge.policy import answer_seen, answer_span, hedge, repetition
from service.judge.prompts import PromptRenderer
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
    early: Judgment | None = None  # invalid / no_answer / too_long: decided without the engine
    response: str = ""  # what the judge is shown of the response ([input] response, then truncation)
    truncated_input: bool = False
    prompt: list[dict[str, str]] | None = None


class Preparer:
    def __init__(self, assets: ProfileAssets, max_model_len: int | None, model_name: str,
                 max_text_chars: int | None = None):
        self.assets = assets
        self.max_model_len = max_model_len
        self.max_text_chars = max_text_chars  # a longer field makes its item too_long, before any tokenizing
        self.model_name = model_name

    # -- output budgets --------------------------------------------------------------------------

    def clamp(self, opts: JudgeOptions) -> JudgeOptions:
        """Fit the output budgets to the model's context (a profile's defaults may exceed it)."""
        if self.max_model_len is None or opts.max_tokens < self.max_model_len:
            return opts
        max_tokens = self.max_model_len - 1
        budget = opts.max_thinking_tokens
        budget = None if budget is None else min(budget, max_tokens)
        return replace(opts, max_tokens=max_tokens, max_thinking_tokens=budget)

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
        """Context a judgment needs beyond its prompt (same for every item of a request): the first
        generation, then at worst the answer's continuation *and* a forced verdict after it (a judge
        that closed its thinking but still gave no verdict in its answer room is forced too)."""
        if opts.profile.scalar:  # a reward model reads the prompt and generates nothing
            return 0
        force = self.assets.force_overhead(opts.profile) if opts.forcing else 0
        thinking = self.first_cap(opts) + self.answer_room(opts) + force
        if opts.direct_first:  # the direct pass is a request of its own on the same prompt
            return max(thinking, len(self.assets.direct_ids(opts.profile)) + self.assets.choice_room(opts.profile))
        return thinking

    # -- items -----------------------------------------------------------------------------------

    async def prepare(self, items: list[ScoreItem], opts: JudgeOptions) -> list[Prepared]:
        """Every item rendered to prompt ids (or decided without the engine: invalid, too_long). The
        spans that hold fields are encoded in one batch over the request, each distinct string once;
        a large batch in a worker thread (the tokenizer releases the GIL, so the event loop keeps
        serving other requests meanwhile)."""
        p = opts.profile
        need = self.output_room(opts)
        preps: list[Prepared] = []
        jobs: list[tuple[Prepared, PromptRenderer, list[str]]] = []
        for index, item in enumerate(items):
            prep = Prepared(index, item)
            preps.append(prep)
            has_ref = item.has_reference
            over = self._over_limit(item)
            if over is not None:
                prep.early = Judgment(ItemStatus.too_long, message=over)
                continue
            if not item.question.strip():  # every profile shows the question: judging without one is silent noise
                prep.early = Judgment(ItemStatus.invalid, message=f"the question is empty; judge {p.name!r} needs "
                                      "the question the response answers")
                continue
            if p.reference == "required" and not has_ref:
                prep.early = Judgment(ItemStatus.invalid, message=f"judge {p.name!r} needs a reference for every item")
                continue
            refused = self.refused_by_policy(item, opts)
            if refused is not None:
                prep.early = refused
                continue
            shown = shown_response(p.response_input, item.response)
            if shown is None:
                prep.early = Judgment(ItemStatus.no_answer, reward=p.no_answer_reward, message=(
                    f"judge {p.name!r} is shown only the response's {p.response_input.replace('_', ' ')}, "
                    "and the response has none"))
                continue
            prep.response = shown
            renderer = self.assets.renderer(p, has_ref and p.shows_reference)
            jobs.append((prep, renderer, renderer.texts(item.question, shown, item.reference, item.criterion)))
        encoded = await self._encode_distinct([t for _, _, texts in jobs for t in texts])
        for prep, renderer, texts in jobs:
            self._fit(prep, renderer, renderer.assemble([encoded[t] for t in texts]), opts, need)
            if prep.early is None:
                prep.key = self.key(prep.item, opts)
        return preps

    def key(self, item: ScoreItem, opts: JudgeOptions) -> str:
        """The judgment key: items with one key share one judgment (duplicates, in flight, the cache).
        The response as sent (what the judge is shown follows from it and the profile); the reference
        only where the profile shows it."""
        reference = item.reference if opts.profile.shows_reference else None
        return judgment_key(self.model_name, *opts.key_parts(), item.question, item.response, reference, item.criterion)

    @staticmethod
    def refused_by_policy(item: ScoreItem, opts: JudgeOptions) -> Judgment | None:
        """The reward policy's checks on the response, before any tokenizing: no final answer, a hedge
        (several different final answers), or a repetition loop."""
        policy, p = opts.policy, opts.profile
        if policy.answer != "none" and answer_span(item.response, policy.answer) is None:
            return Judgment(ItemStatus.no_answer, reward=p.no_answer_reward, message=(
                f"the response has no final answer (reward policy answer = {policy.answer!r}: "
                + ("a \\boxed{} answer or a 'Final Answer:' line" if policy.answer == "final_answer"
                   else "a \\boxed{} answer, a 'Final Answer:' line or a number") + ")"))
        candidates = hedge(item.response, item.question, policy)
        if candidates is not None:
            return Judgment(ItemStatus.no_answer, reward=p.no_answer_reward, message=(
                f"hedged: the response names {len(candidates)} different final answers ({shown(candidates)}) "
                "(reward policy hedged = 'no_answer'; 'judge' has them judged)"))
        if policy.max_repetition:
            ratio = repetition(item.response)
            if ratio > policy.max_repetition:
                return Judgment(ItemStatus.degenerate, message=(
                    f"the response repeats itself: it compresses {ratio:.0f}x (reward policy max_repetition = "
                    f"{policy.max_repetition:g})"))
        return None

    def _over_limit(self, item: ScoreItem) -> str | None:
        """Why the item is over the server's text limit (per item: one long response never fails a batch)."""
        limit = self.max_text_chars
        if limit is None:
            return None
        for field in ("question", "response", "reference"):
            value = getattr(item, field)
            if value is not None and len(value) > limit:
                return f"the {field} is {len(value)} characters; this server's limit is {limit} (LIBRA_MAX_TEXT_CHARS)"
        return None

    async def _encode_distinct(self, texts: list[str]) -> dict[str, list[int]]:
        distinct = list(dict.fromkeys(texts))
        if sum(map(len, distinct)) < ENCODE_INLINE_CHARS:
            ids = self.assets.encoder.encode_batch(distinct)
        else:
            ids = await asyncio.to_thread(self.assets.encoder.encode_batch, distinct)
        return dict(zip(distinct, ids, strict=True))

    def _fit(self, prep: Prepared, renderer: PromptRenderer, ids: list[int], opts: JudgeOptions, need: int) -> None:
        """Fit the prompt to the context (or decide too_long), then set its ids."""
        p, item = opts.profile, prep.item
        if self.max_model_len is not None and len(ids) + need > self.max_model_len:
            fitted = None if p.truncate == "none" else self._truncated(renderer, prep, len(ids), need, p.truncate)
            if fitted is None:
                prep.early = Judgment(ItemStatus.too_long, message=(
                    f"the prompt is {len(ids)} tokens; with {need} tokens for the judge's output it exceeds "
                    f"the model's context of {self.max_model_len} tokens"))
            else:
                ids, response, kept = fitted
                prep.truncated_input = True
                if opts.policy.truncated == "answer_seen" and not answer_seen(prep.response, kept, opts.policy):
                    prep.early = Judgment(ItemStatus.too_long, truncated_input=True, message=(
                        "the response was cut to fit the model's context and its final answer was cut with it "
                        "(reward policy truncated = 'answer_seen': the judge must see the final answer)"))
                prep.response = response
        if opts.return_prompt:
            prep.prompt = renderer.fill(item.question, prep.response, item.reference, item.criterion)
        if prep.early is None:
            prep.ids = ids

    def _truncated(self, renderer: PromptRenderer, prep: Prepared, prompt_len: int, need: int, mode: str
                   ) -> tuple[list[int], str, list[tuple[int, int]]] | None:
        """The prompt with the response cut (as text, at token boundaries, before the one encode) so
        that it fits, the cut response and the character ranges of the original it kept; None when
        too little of the response would remain."""
        item = prep.item
        limit = self.max_model_len - need
        ends = self.assets.encoder.char_ends(prep.response)
        mark = len(self.assets.encoder.encode(TRUNCATION_MARK))
        over = prompt_len - limit
        for _ in range(4):  # re-encoding at the cut can merge a token or two differently: check, shrink
            keep = len(ends) - over - mark - 2
            if keep < 16:
                return None
            response = cut_text(prep.response, ends, keep, mode)
            ids = renderer.render(item.question, response, item.reference, item.criterion)
            if len(ids) <= limit:
                return ids, response, kept_ranges(len(prep.response), ends, keep, mode)
            over += len(ids) - limit
        return None


def kept_ranges(length: int, ends: list[int], keep: int, mode: str) -> list[tuple[int, int]]:
    """The character ranges of the text that ``cut_text`` keeps (same arguments)."""
    n = len(ends)
    if mode == "head":
        return [(0, ends[keep - 1])]
    if mode == "tail":
        return [(ends[n - keep - 1], length)]
    head = keep // 2
    return [(0, ends[head - 1]), (ends[n - (keep - head) - 1], length)]


def cut_text(text: str, ends: list[int], keep: int, mode: str) -> str:
    """``text`` cut to its first/last ``keep`` tokens (``ends``: each token's end offset) with
    ``TRUNCATION_MARK`` where text was dropped: head keeps the start, tail the end, middle both ends."""
    n = len(ends)
    if mode == "head":
        return text[: ends[keep - 1]] + TRUNCATION_MARK
    if mode == "tail":
        return TRUNCATION_MARK + text[ends[n - keep - 1]:]
    head = keep // 2
    return text[: ends[head - 1]] + TRUNCATION_MARK + text[ends[n - (keep - head) - 1]:]
