"""The scorer: items in, one result per item out.

    validate -> render (token-safe, truncate or too_long) -> dedup + cache -> group priming ->
    engine.generate (k samples, one request) -> split thinking -> parse -> force if over budget ->
    rewards -> vote

Every unique item becomes its own engine request at once: the engine's continuous batching
interleaves them with the items of every other concurrent request. Cancelling ``score`` (the client
went away) cancels the pending generate calls, and vLLM aborts them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum

from service.engine.base import Completion, EngineDead, EngineError, Generation, JudgeEngine, SamplingSpec
from service.judge.cache import InFlight, LruCache, judgment_key
from service.judge.profiles import Profile
from service.judge.prompts import PlainEncoder, PromptRenderer
from service.judge.verdict import parse_verdict
from service.judge.verifier import VerifyOutcome, VerifyPool

log = logging.getLogger(__name__)

TRUNCATION_MARK = "\n[...]\n"
ENCODE_INLINE_CHARS = 64 * 1024  # requests with more text than this are tokenized off the event loop


class ItemStatus(StrEnum):
    """Every item of every accepted request ends with exactly one of these."""

    ok = "ok"  # the judge gave a verdict; reward is set
    forced = "forced"  # the judge ran out of thinking budget; the verdict was forced; reward is set
    unparsed = "unparsed"  # the judge finished but no verdict could be read from its answer
    truncated = "truncated"  # the judge hit max_tokens before giving a verdict (forcing off)
    too_long = "too_long"  # the prompt does not fit the model's context (no engine call was made)
    timeout = "timeout"  # not judged by the request's deadline; its engine work was aborted
    invalid = "invalid"  # the item cannot be judged as given (e.g. the profile needs a reference)
    error = "error"  # the engine failed this item; retrying it may succeed


VERDICT_STATUSES = (ItemStatus.ok, ItemStatus.forced)


@dataclass(frozen=True)
class ScoreItem:
    question: str
    response: str
    reference: str | None = None
    id: str | None = None


@dataclass(frozen=True)
class JudgeOptions:
    """Everything about a call that changes the judgment (and so the cache key), plus output options."""

    profile: Profile
    samples: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 1024
    max_thinking_tokens: int | None = None
    seed: int | None = None
    return_reasoning: bool = False  # also each sample's full output and verdict
    return_prompt: bool = False  # the judge's prompt as chat messages (an output option: not in the cache key)
    cache: bool | None = None  # None: on for greedy sampling, off otherwise
    mode: str = "judge"  # judge | verify | hybrid | both (rule-based verification against the reference)

    @classmethod
    def from_profile(cls, profile: Profile, **overrides) -> JudgeOptions:
        s = profile.sampling
        base = dict(
            samples=int(s.get("samples", 1)),
            temperature=float(s.get("temperature", 0.0)),
            top_p=float(s.get("top_p", 1.0)),
            max_tokens=int(s.get("max_tokens", 1024)),
            max_thinking_tokens=int(s["max_thinking_tokens"]) if "max_thinking_tokens" in s else None,
        )
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(profile=profile, **base)

    @property
    def forcing(self) -> bool:
        return self.max_thinking_tokens is not None and self.profile.can_force

    @property
    def use_cache(self) -> bool:
        return self.temperature == 0.0 if self.cache is None else self.cache


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class SampleOutput:
    """One sample as the judge generated it (with a forced verdict's closing, if one was forced)."""

    text: str
    verdict: str | None
    status: ItemStatus


@dataclass
class Judgment:
    """The outcome of judging one unique item (shared by its duplicates and cache hits)."""

    status: ItemStatus
    reward: float | None = None
    verdict: str | None = None
    votes: dict[str, int] = field(default_factory=dict)
    agreement: float | None = None
    usage: Usage = field(default_factory=Usage)
    reasoning: list[str] | None = None
    outputs: list[SampleOutput] | None = None  # with return_reasoning: each sample's text, verdict, status
    message: str | None = None
    truncated_input: bool = False
    source: str = "judge"  # judge | verify: which decided the reward
    verify: VerifyOutcome | None = None  # the rule-based check, when one ran
    verify_agrees: bool | None = None  # mode both: did the judge and the check agree?


@dataclass
class ItemResult:
    index: int
    id: str | None
    judgment: Judgment
    cached: bool = False  # served from the cache or from an identical item (no engine work)
    prompt: list[dict[str, str]] | None = None  # with return_prompt: the messages the judge was shown

    def __getattr__(self, name: str):  # result.status, result.reward, ... read through
        return getattr(self.__dict__["judgment"], name)


@dataclass
class ScorerStats:
    """Engine work done and avoided; the metrics module reads these."""

    items: int = 0
    engine_requests: int = 0
    engine_prompt_tokens: int = 0
    engine_completion_tokens: int = 0
    dedup_hits: int = 0
    cache_hits: int = 0
    saved_prompt_tokens: int = 0
    saved_completion_tokens: int = 0
    forced_verdicts: int = 0
    primed_groups: int = 0
    statuses: Counter = field(default_factory=Counter)
    sources: Counter = field(default_factory=Counter)
    verify_agreement: Counter = field(default_factory=Counter)  # "agree" / "disagree" (mode both)


@dataclass
class _Prepared:
    index: int
    item: ScoreItem
    ids: list[int] | None = None
    key: str | None = None
    early: Judgment | None = None  # invalid / too_long: decided without the engine
    truncated_input: bool = False
    prompt: list[dict[str, str]] | None = None


class Scorer:
    """Scores items with any judge profile on one engine."""

    def __init__(self, engine: JudgeEngine, max_model_len: int | None = None, cache_entries: int = 100_000,
                 cache_bytes: int = 256 * 2**20, group_priming: bool = True, min_prime_tokens: int = 32,
                 verifier: VerifyPool | None = None):
        self.engine = engine
        self.verifier = verifier
        self.max_model_len = max_model_len
        self.cache: LruCache[Judgment] = LruCache(cache_entries, cache_bytes, size_of=_judgment_size)
        self.inflight: InFlight[Judgment] = InFlight()
        self.group_priming = group_priming
        self.min_prime_tokens = min_prime_tokens
        self.stats = ScorerStats()
        self.on_judgment: Callable[[float, float], None] | None = None  # (queue wait s, judge s) -> metrics
        self._renderers: dict[tuple[str, bool], PromptRenderer] = {}
        self._encoder: PlainEncoder | None = None  # one plain-text copy of the tokenizer for every profile
        self._force_overheads: dict[str, int] = {}

    # -- rendering -------------------------------------------------------------------------------

    @property
    def encoder(self) -> PlainEncoder:
        """The plain-text copy of the tokenizer, built on first use and shared by every profile."""
        if self._encoder is None:
            self._encoder = PlainEncoder(self.engine.tokenizer)
        return self._encoder

    def renderer(self, profile: Profile, has_reference: bool) -> PromptRenderer:
        key = (profile.source or profile.name, has_reference)
        r = self._renderers.get(key)
        if r is None:
            if profile.prompt is not None:
                r = PromptRenderer(self.engine.tokenizer, raw_prompt=profile.prompt_for(has_reference),
                                   encoder=self.encoder)
            else:
                r = PromptRenderer(self.engine.tokenizer, profile.messages_for(has_reference), encoder=self.encoder)
            self._renderers[key] = r
        return r

    def clamp(self, opts: JudgeOptions) -> JudgeOptions:
        """Fit the output budgets to the model's context (a profile's defaults may exceed it)."""
        if self.max_model_len is None or opts.max_tokens < self.max_model_len:
            return opts
        max_tokens = self.max_model_len - 1
        budget = opts.max_thinking_tokens
        budget = None if budget is None else min(budget, max_tokens)
        return replace(opts, max_tokens=max_tokens, max_thinking_tokens=budget)

    def _force_overhead(self, opts: JudgeOptions) -> int:
        """Tokens a forced verdict appends (closing marker, prefix, longest choice); once per profile."""
        if not opts.forcing:
            return 0
        p = opts.profile
        key = p.source or p.name
        if key not in self._force_overheads:
            tok = self.engine.tokenizer
            closing = len(tok.encode((p.think_end or "") + (p.force_prefix or ""), add_special_tokens=False))
            longest = max(len(tok.encode(c, add_special_tokens=False)) for c in p.force_choices)
            self._force_overheads[key] = closing + longest + 1
        return self._force_overheads[key]

    def first_cap(self, opts: JudgeOptions) -> int:
        """max_tokens of the first generation: the thinking budget when forcing is on."""
        if opts.forcing:
            return max(1, min(opts.max_tokens, opts.max_thinking_tokens))
        return opts.max_tokens

    @staticmethod
    def answer_room(opts: JudgeOptions) -> int:
        """Tokens a judge that closed its thinking within the budget gets to finish its answer."""
        return int(opts.profile.sampling.get("answer_tokens", 64)) if opts.forcing else 0

    def _output_room(self, opts: JudgeOptions) -> int:
        """Context a judgment needs beyond its prompt (same for every item of a request)."""
        return self.first_cap(opts) + max(self.answer_room(opts), self._force_overhead(opts))

    async def _encode_texts(self, items: list[ScoreItem]) -> dict[str, list[int]]:
        """Every distinct text of the request encoded in one batch (a GRPO group's question once). A
        large batch is encoded in a worker thread: the tokenizer releases the GIL, so the event loop
        keeps serving other requests meanwhile."""
        texts = list({t: None for item in items for t in (item.question, item.response, item.reference) if t})
        if sum(map(len, texts)) < ENCODE_INLINE_CHARS:
            ids = self.encoder.encode_batch(texts)
        else:
            ids = await asyncio.to_thread(self.encoder.encode_batch, texts)
        return dict(zip(texts, ids, strict=True))

    def _prepare(self, index: int, item: ScoreItem, opts: JudgeOptions, need: int,
                 encoded: dict[str, list[int]] | None = None) -> _Prepared:
        p = opts.profile
        prep = _Prepared(index, item)
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
            cut = _truncate(ids[start:end], room, mark, p.truncate)
            ids, _ = renderer.render_parts(item.question, item.response, item.reference, response_ids=cut,
                                           encoded=encoded)
            prep.truncated_input = True
            if opts.return_prompt:
                prep.prompt = renderer.fill(item.question, self.engine.tokenizer.decode(cut), item.reference)
        if opts.return_prompt and prep.prompt is None:
            prep.prompt = renderer.fill(item.question, item.response, item.reference)
        prep.ids = ids
        model = getattr(self.engine, "model_name", "")
        prep.key = judgment_key(p.source or p.name, model, opts.samples, opts.temperature, opts.top_p,
                                opts.max_tokens, opts.max_thinking_tokens if opts.forcing else None, opts.seed,
                                opts.return_reasoning, item.question, item.response,
                                item.reference if p.reference != "unused" else None)
        return prep

    # -- scoring ---------------------------------------------------------------------------------

    async def score(self, items: list[ScoreItem], opts: JudgeOptions, timeout_s: float | None = None
                    ) -> list[ItemResult]:
        """One result per item, in input order. Raises ``EngineDead`` if the engine died meanwhile.

        Items not judged within ``timeout_s`` get status ``timeout`` and their engine work is aborted
        (unless another request is still waiting on the same judgment). ``opts.mode`` adds rule-based
        verification: ``verify`` (only the check), ``hybrid`` (the check where it is conclusive, the
        judge for the rest), ``both`` (the judge's reward, with the check and their agreement).
        """
        opts = self.clamp(opts)
        self.stats.items += len(items)
        if opts.mode == "judge":
            results = await self._score_judged(items, opts, timeout_s)
        else:
            results = await self._score_with_verify(items, opts, timeout_s)
        for r in results:
            self.stats.statuses[r.judgment.status.value] += 1
            self.stats.sources[r.judgment.source] += 1
        return results

    async def _score_with_verify(self, items: list[ScoreItem], opts: JudgeOptions, timeout_s: float | None
                                 ) -> list[ItemResult]:
        if self.verifier is None:
            raise EngineError("rule-based verification is not enabled on this server")
        checked = [i for i, item in enumerate(items) if item.reference not in (None, "")]
        outcomes: dict[int, VerifyOutcome] = dict(zip(checked, await asyncio.gather(
            *(self.verifier.check(items[i].reference, items[i].response) for i in checked)), strict=True))
        results: list[ItemResult | None] = [None] * len(items)
        to_judge: list[int] = []
        for i, item in enumerate(items):
            outcome = outcomes.get(i)
            if opts.mode == "verify":
                results[i] = ItemResult(i, item.id, _verified(outcome))
            elif opts.mode == "hybrid" and outcome is not None and outcome.conclusive:
                results[i] = ItemResult(i, item.id, _verified(outcome))
            else:
                to_judge.append(i)
        if to_judge:
            judged = await self._score_judged([items[i] for i in to_judge], opts, timeout_s)
            for i, r in zip(to_judge, judged, strict=True):
                outcome = outcomes.get(i)
                j = replace(r.judgment, verify=outcome)
                if opts.mode == "both" and outcome is not None and outcome.conclusive and j.reward is not None:
                    j.verify_agrees = (j.reward >= 0.5) == (outcome.status == "correct")
                    self.stats.verify_agreement["agree" if j.verify_agrees else "disagree"] += 1
                results[i] = ItemResult(i, items[i].id, j, cached=r.cached, prompt=r.prompt)
        return results  # type: ignore[return-value]

    async def _score_judged(self, items: list[ScoreItem], opts: JudgeOptions, timeout_s: float | None
                            ) -> list[ItemResult]:
        need = self._output_room(opts)
        encoded = await self._encode_texts(items)
        preps = [self._prepare(i, item, opts, need, encoded) for i, item in enumerate(items)]
        results: list[ItemResult | None] = [None] * len(items)
        first_by_key: dict[str, _Prepared] = {}
        duplicates: list[_Prepared] = []
        for prep in preps:
            if prep.early is not None:
                results[prep.index] = ItemResult(prep.index, prep.item.id, prep.early, prompt=prep.prompt)
            elif prep.key in first_by_key:
                duplicates.append(prep)
            else:
                cached = self.cache.get(prep.key) if opts.use_cache else None
                if cached is not None:
                    self.stats.cache_hits += 1
                    self._count_saved(cached)
                    results[prep.index] = ItemResult(prep.index, prep.item.id, cached, cached=True,
                                                     prompt=prep.prompt)
                else:
                    first_by_key[prep.key] = prep

        unique = list(first_by_key.values())
        tasks = [asyncio.ensure_future(c) for c in self._launch(unique, opts)]
        pending: set = set()
        try:
            if tasks:
                _, pending = await asyncio.wait(tasks, timeout=timeout_s)
            # Read every finished task's exception, not only the first: when the engine dies, hundreds
            # of tasks fail with it, and asyncio would log each unread one with its (long) traceback.
            dead = [e for e in (t.exception() for t in tasks if t not in pending and not t.cancelled())
                    if isinstance(e, EngineDead)]
            if dead:
                raise dead[0]
        finally:  # the deadline passed, or the caller was cancelled (client gone): abort what is left
            late = {t for t in tasks if not t.done()}
            for task in late:
                task.cancel()
            if late:
                await asyncio.gather(*late, return_exceptions=True)
        for prep, task in zip(unique, tasks, strict=True):
            if task in pending:
                judgment, joined = Judgment(ItemStatus.timeout, message=(
                    f"not judged within the request's deadline of {timeout_s:g} s")), False
            elif task.exception() is not None:
                judgment, joined = Judgment(ItemStatus.error, message=f"{type(task.exception()).__name__}: "
                                            f"{task.exception()}"), False
            else:
                judgment, joined = task.result()
            results[prep.index] = ItemResult(prep.index, prep.item.id, judgment, cached=joined, prompt=prep.prompt)
            if joined:
                self.stats.dedup_hits += 1
                self._count_saved(judgment)
        for prep in duplicates:
            judgment = results[first_by_key[prep.key].index].judgment
            results[prep.index] = ItemResult(prep.index, prep.item.id, judgment, cached=True, prompt=prep.prompt)
            self.stats.dedup_hits += 1
            self._count_saved(judgment)
        return results  # type: ignore[return-value]

    def _count_saved(self, j: Judgment) -> None:
        self.stats.saved_prompt_tokens += j.usage.prompt_tokens
        self.stats.saved_completion_tokens += j.usage.completion_tokens

    def _launch(self, unique: list[_Prepared], opts: JudgeOptions) -> list:
        """Coroutines for the unique items; items sharing a question wait for their group's primer."""
        primers: dict[int, asyncio.Future] = {}
        if self.group_priming:
            groups: dict[tuple[str, str | None], list[_Prepared]] = defaultdict(list)
            for prep in unique:
                if prep.key not in self.inflight:
                    groups[(prep.item.question, prep.item.reference)].append(prep)
            for members in groups.values():
                if len(members) < 2:
                    continue
                prefix = _common_prefix([m.ids for m in members])
                if len(prefix) >= self.min_prime_tokens:
                    primer = asyncio.ensure_future(self._prime(prefix))
                    for m in members:
                        primers[m.index] = primer
        return [self._judge_shared(prep, opts, primers.get(prep.index)) for prep in unique]

    async def _prime(self, prefix: list[int]) -> None:
        """Prefill a group's shared prefix once so vLLM's prefix cache serves the whole group."""
        self.stats.primed_groups += 1
        try:
            await self.engine.generate(prefix, SamplingSpec(max_tokens=1), f"libra-prime-{uuid.uuid4().hex}")
        except EngineDead:
            raise
        except Exception as exc:  # priming is an optimisation: never fail items because of it
            log.warning("group priming failed: %s", exc)

    async def _judge_shared(self, prep: _Prepared, opts: JudgeOptions, primer: asyncio.Future | None):
        async def start() -> Judgment:
            t0 = time.perf_counter()
            if primer is not None:
                await asyncio.shield(primer)
            t1 = time.perf_counter()
            judgment = await self._judge(prep.ids, opts)
            if self.on_judgment is not None:
                self.on_judgment(t1 - t0, time.perf_counter() - t1)
            judgment.truncated_input = prep.truncated_input
            if opts.use_cache and judgment.status != ItemStatus.error:
                self.cache.put(prep.key, judgment)
            return judgment

        return await self.inflight.run(prep.key, start)

    async def _generate(self, ids: list[int], spec: SamplingSpec, kind: str) -> tuple[Generation | None, str]:
        """One counted engine request: (generation, "") or (None, why it failed). EngineDead propagates."""
        self.stats.engine_requests += 1
        try:
            gen = await self.engine.generate(ids, spec, f"libra-{kind}{uuid.uuid4().hex}")
        except EngineDead:
            raise
        except EngineError as exc:
            return None, str(exc)
        self.stats.engine_completion_tokens += sum(len(c.token_ids) for c in gen.completions)
        return gen, ""

    async def _judge(self, ids: list[int], opts: JudgeOptions) -> Judgment:
        spec = SamplingSpec(max_tokens=self.first_cap(opts), temperature=opts.temperature, top_p=opts.top_p,
                            n=opts.samples, seed=opts.seed)
        gen, error = await self._generate(ids, spec, "")
        if gen is None:
            return Judgment(ItemStatus.error, message=error, usage=Usage(len(ids), 0))
        self.stats.engine_prompt_tokens += gen.prompt_tokens
        samples = await asyncio.gather(*(self._finish_sample(ids, c, opts) for c in gen.completions))
        return _vote(samples, opts, Usage(len(ids), sum(s.completion_tokens for s in samples)))

    async def _finish_sample(self, ids: list[int], c: Completion, opts: JudgeOptions) -> _Sample:
        p = opts.profile
        verdict = parse_verdict(c.text, p.think_end, p.verdict_pattern)
        sample = _Sample(status=ItemStatus.unparsed, text=c.text, thinking=verdict.thinking,
                         completion_tokens=len(c.token_ids))
        if p.reward_for(verdict.label) is not None:
            sample.status, sample.label = ItemStatus.ok, verdict.label
        elif c.finish_reason == "length" and opts.forcing:
            text, token_ids = c.text, list(c.token_ids)
            if p.think_end and p.think_end in text:
                # The thinking closed within the budget and only the answer was cut: let the judge
                # finish it in its own words before forcing anything.
                spec = SamplingSpec(max_tokens=self.answer_room(opts), temperature=opts.temperature,
                                    top_p=opts.top_p, seed=opts.seed)
                cont, error = await self._generate(ids + token_ids, spec, "answer-")
                if cont is None:
                    sample.status, sample.message = ItemStatus.error, f"finishing the answer failed: {error}"
                    return sample
                more = cont.completions[0]
                sample.completion_tokens += len(more.token_ids)
                text, token_ids = text + more.text, token_ids + list(more.token_ids)
                verdict = parse_verdict(text, p.think_end, p.verdict_pattern)
                if p.reward_for(verdict.label) is not None:
                    sample.status, sample.label, sample.text = ItemStatus.ok, verdict.label, text
                    return sample
            await self._force(ids, text, token_ids, opts, sample)
        elif c.finish_reason == "length":
            sample.status = ItemStatus.truncated
        return sample

    async def _force(self, ids: list[int], text: str, token_ids: list[int], opts: JudgeOptions,
                     sample: _Sample) -> None:
        """Close the thinking and ask the engine for the verdict alone, constrained to the labels."""
        p = opts.profile
        closed = p.think_end and p.think_end in text
        closing = ("" if closed else (p.think_end or "")) + (p.force_prefix or "")
        closing_ids = self.engine.tokenizer.encode(closing, add_special_tokens=False) if closing else []
        spec = SamplingSpec(max_tokens=self._force_overhead(opts), temperature=0.0, choices=p.force_choices)
        gen, error = await self._generate(ids + token_ids + closing_ids, spec, "force-")
        if gen is None:
            sample.status, sample.message = ItemStatus.error, f"forcing the verdict failed: {error}"
            return
        forced = gen.completions[0]
        sample.completion_tokens += len(forced.token_ids)
        text = text + closing + forced.text
        verdict = parse_verdict(text, p.think_end, p.verdict_pattern)
        sample.text = text
        if p.reward_for(verdict.label) is not None:
            sample.status, sample.label, sample.thinking = ItemStatus.forced, verdict.label, verdict.thinking
            self.stats.forced_verdicts += 1
        else:
            sample.status = ItemStatus.unparsed


@dataclass
class _Sample:
    status: ItemStatus
    text: str
    thinking: str | None
    completion_tokens: int
    label: str | None = None
    message: str | None = None


def _vote(samples: list[_Sample], opts: JudgeOptions, usage: Usage) -> Judgment:
    p = opts.profile
    k = len(samples)
    votes = Counter(s.label if s.status in VERDICT_STATUSES else s.status.value for s in samples)
    decided = [s for s in samples if s.status in VERDICT_STATUSES]
    reasoning = outputs = None
    if opts.return_reasoning:
        reasoning = [s.thinking if s.thinking is not None else s.text for s in samples]
        outputs = [SampleOutput(s.text, s.label, s.status) for s in samples]
    if not decided:
        statuses = {s.status for s in samples}
        status = next((st for st in (ItemStatus.error, ItemStatus.truncated) if st in statuses), ItemStatus.unparsed)
        messages = {
            ItemStatus.truncated: f"the judge used all {opts.max_tokens} tokens before giving a verdict",
            ItemStatus.unparsed: "the judge finished without a verdict in its answer",
        }
        message = next((s.message for s in samples if s.message), messages.get(status))
        return Judgment(status, votes=dict(votes), usage=usage, reasoning=reasoning, outputs=outputs,
                        message=message)
    label_votes = Counter(s.label for s in decided)
    verdict, top = max(label_votes.items(), key=lambda kv: (kv[1], p.rewards[kv[0]]))
    reward = sum(p.rewards[s.label] for s in decided) / len(decided)
    status = ItemStatus.forced if any(s.status == ItemStatus.forced for s in decided) else ItemStatus.ok
    message = "the thinking budget ran out; the verdict was forced" if status == ItemStatus.forced else None
    return Judgment(status, reward=reward, verdict=verdict, votes=dict(votes), agreement=top / k, usage=usage,
                    reasoning=reasoning, outputs=outputs, message=message)


def _verified(outcome: VerifyOutcome | None) -> Judgment:
    """A result decided by the rule-based check alone."""
    if outcome is None:
        return Judgment(ItemStatus.invalid, source="verify", message="verification needs a reference for the item")
    if outcome.conclusive:
        return Judgment(ItemStatus.ok, reward=1.0 if outcome.status == "correct" else 0.0, verdict=outcome.status,
                        votes={outcome.status: 1}, agreement=1.0, source="verify", verify=outcome)
    status = {"timeout": ItemStatus.timeout, "error": ItemStatus.error}.get(outcome.status, ItemStatus.unparsed)
    return Judgment(status, source="verify", verify=outcome, message=outcome.message)


def _truncate(ids: list[int], room: int, mark: list[int], mode: str) -> list[int]:
    keep = room - len(mark)
    if mode == "head":
        return ids[:keep] + mark
    if mode == "tail":
        return mark + ids[len(ids) - keep:]
    head = keep // 2
    return ids[:head] + mark + ids[len(ids) - (keep - head):]


def _common_prefix(seqs: list[list[int]]) -> list[int]:
    first = seqs[0]
    n = min(len(s) for s in seqs)
    for i in range(n):
        t = first[i]
        if any(s[i] != t for s in seqs):
            return first[:i]
    return first[:n]


def _judgment_size(j: Judgment) -> int:
    text = sum(len(r) for r in j.reasoning or ()) + sum(len(o.text) for o in j.outputs or ()) + len(j.message or "")
    return 512 + 2 * text

