"""Judging one item: generate k samples, read each verdict, force one past the thinking budget, vote.

    [direct-first: the verdict without thinking, with its label probabilities; it stands where the
    judge is sure (cascade.py)] ->
    generate (k samples, one engine request) -> per sample: parse the verdict after the thinking;
    if the output was cut: let a judge that closed its thinking finish its answer, else close the
    thinking and force the verdict (constrained to the profile's labels) -> vote -> one Judgment

Verdicts are read only from what the judge generated (never from the prompt); a sample without a
verdict is ``unparsed`` or ``truncated``, never a reward.

A scalar profile's item is one ``classify`` request instead (``_score``): the reward model's raw score,
or its sigmoid with ``reward_mode: prob``.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from dataclasses import dataclass

from service.engine.base import (
    Completion,
    EngineDead,
    EngineError,
    Generation,
    JudgeEngine,
    RequestKind,
    SamplingSpec,
    new_request_id,
)
from service.judge.assets import ProfileAssets
from service.judge.prepare import Preparer
from service.judge.prob import TOP_LOGPROBS, expected_reward, label_probs, label_start, positive_prob, token_boundary
from service.judge.types import (
    VERDICT_STATUSES,
    ItemStatus,
    JudgeOptions,
    Judgment,
    SampleOutput,
    ScorerStats,
    Usage,
)
from service.judge.verdict import parse_verdict
from service.judge.verifier import VerifyOutcome


@dataclass
class Sample:
    """One sample while it is being judged."""

    status: ItemStatus
    text: str
    thinking: str | None
    completion_tokens: int
    label: str | None = None
    message: str | None = None
    probs: dict[str, float] | None = None  # the labels' probabilities at the verdict position


class ItemJudge:
    """Judges prepared prompts on one engine, counting its engine work in ``stats``. The output budgets
    are the ``preparer``'s (each prompt was fitted to leave room for them); closing ids, choice room and
    label texts come from the ``ProfileAssets`` the preparer renders with."""

    def __init__(self, engine: JudgeEngine, preparer: Preparer, assets: ProfileAssets, stats: ScorerStats):
        self.engine = engine
        self.preparer = preparer
        self.assets = assets
        self.stats = stats

    def wanted_label_texts(self, opts: JudgeOptions, forced: bool = False) -> dict[str, str] | None:
        """The profile's label texts, only when its verdict probabilities are wanted (always for a
        forced verdict: its request returns them at no cost) and readable."""
        if not (forced or opts.probe or opts.reward_mode == "prob"):
            return None
        return self.assets.label_texts(opts.profile)

    async def generate(self, ids: list[int], spec: SamplingSpec, kind: RequestKind
                       ) -> tuple[Generation | None, str]:
        """One counted engine request: (generation, "") or (None, why it failed). EngineDead propagates."""
        self.stats.engine_requests += 1
        try:
            gen = await self.engine.generate(ids, spec, new_request_id(kind))
        except EngineDead:
            raise
        except EngineError as exc:
            return None, str(exc)
        self.stats.engine_completion_tokens += sum(len(c.token_ids) for c in gen.completions)
        return gen, ""

    async def judge(self, ids: list[int], opts: JudgeOptions) -> Judgment:
        if opts.profile.scalar:
            return await self._score(ids, opts)
        if not opts.direct_first:
            return await self._think(ids, opts)
        direct = await self._direct(ids, opts)
        sure = max(direct.probs.values()) if direct is not None and direct.probs else None
        spent = direct.completion_tokens if direct is not None else 0
        self.stats.direct_first_tokens["direct"] += spent
        # It stands only as the label it is sure of (a choice spelled with other first tokens could differ).
        if (sure is not None and sure >= opts.direct_threshold and direct.status == ItemStatus.ok
                and direct.probs.get(direct.label) == sure):
            self.stats.direct_first["direct"] += 1
            judgment = vote([direct], opts, Usage(len(ids), spent))
            judgment.judge_pass, judgment.direct_prob = "direct", sure
            return judgment
        judgment = await self._think(ids, opts)
        self.stats.direct_first["thinking"] += 1
        self.stats.direct_first_tokens["thinking"] += judgment.usage.completion_tokens
        judgment.usage.completion_tokens += spent  # the item's cost is both passes
        judgment.judge_pass, judgment.direct_prob = "thinking", sure
        return judgment

    async def _score(self, ids: list[int], opts: JudgeOptions) -> Judgment:
        """A scalar reward model's judgment: one classify request; the reward is the raw score (as verl and
        OpenRLHF pass a Bradley-Terry model's output on) or, with ``reward_mode: prob``, its sigmoid."""
        self.stats.engine_requests += 1
        try:
            scored = await self.engine.classify(ids, new_request_id(RequestKind.score), priority=opts.priority)
        except EngineDead:
            raise
        except EngineError as exc:
            return Judgment(ItemStatus.error, message=str(exc), usage=Usage(len(ids), 0))
        self.stats.engine_prompt_tokens += scored.prompt_tokens
        self.stats.scalar_scores += 1
        if not math.isfinite(scored.score):
            return Judgment(ItemStatus.error, score=None, usage=Usage(scored.prompt_tokens, 0),
                            message=f"the reward model's score is not a number ({scored.score})")
        reward = sigmoid(scored.score) if opts.reward_mode == "prob" else scored.score
        return Judgment(ItemStatus.ok, reward=reward, score=scored.score, usage=Usage(scored.prompt_tokens, 0))

    async def _direct(self, ids: list[int], opts: JudgeOptions) -> Sample | None:
        """The verdict without thinking: the judge's no-thinking opening, the force prefix, then one of
        the profile's choices, greedy, with the labels' probabilities at its first token. Where the choices
        begin with different characters, that first token alone is generated: it names the choice, whose
        rest the constraint would force. None when the request failed (the thinking judgment then decides)."""
        p = opts.profile
        by_first = self.assets.choice_by_first_char(p)
        spec = SamplingSpec(max_tokens=1 if by_first else self.assets.choice_room(p), temperature=0.0,
                            choices=p.force_choices, logprobs=TOP_LOGPROBS, priority=opts.priority)
        gen, _ = await self.generate(ids + self.assets.direct_ids(p), spec, RequestKind.direct)
        if gen is None:
            return None
        c = gen.completions[0]
        written = c.text if by_first is None else by_first.get(c.text[:1], c.text)
        text = (p.direct_open or "") + (p.force_prefix or "") + written
        verdict = parse_verdict(text, p.think_end, p.verdict_pattern)
        sample = Sample(status=ItemStatus.unparsed, text=text, thinking=verdict.thinking,
                        completion_tokens=len(c.token_ids))
        if p.reward_for(verdict.label) is not None:
            sample.status, sample.label = ItemStatus.ok, p.label_of(verdict.label)
            sample.probs = label_probs(self.engine.tokenizer, c.first_logprobs, self.assets.label_texts(p) or {})
        return sample

    async def _think(self, ids: list[int], opts: JudgeOptions) -> Judgment:
        spec = SamplingSpec(max_tokens=self.preparer.first_cap(opts), temperature=opts.temperature,
                            top_p=opts.top_p, n=opts.samples, seed=opts.seed, priority=opts.priority)
        gen, error = await self.generate(ids, spec, RequestKind.judge)
        if gen is None:
            return Judgment(ItemStatus.error, message=error, usage=Usage(len(ids), 0))
        self.stats.engine_prompt_tokens += gen.prompt_tokens
        samples = await asyncio.gather(*(self._finish_sample(ids, c, opts) for c in gen.completions))
        return vote(samples, opts, Usage(len(ids), sum(s.completion_tokens for s in samples)))

    async def _finish_sample(self, ids: list[int], c: Completion, opts: JudgeOptions) -> Sample:
        p = opts.profile
        verdict = parse_verdict(c.text, p.think_end, p.verdict_pattern)
        sample = Sample(status=ItemStatus.unparsed, text=c.text, thinking=verdict.thinking,
                        completion_tokens=len(c.token_ids))
        if p.reward_for(verdict.label) is not None:
            sample.status, sample.label = ItemStatus.ok, p.label_of(verdict.label)
            sample.probs = await self._probe(ids, list(c.token_ids), c.text, opts)
        elif c.finish_reason == "length" and opts.forcing:
            text, token_ids = c.text, list(c.token_ids)
            if p.think_end and p.think_end in text:
                # The thinking closed within the budget and only the answer was cut: let the judge
                # finish it in its own words before forcing anything.
                spec = SamplingSpec(max_tokens=self.preparer.answer_room(opts), temperature=opts.temperature,
                                    top_p=opts.top_p, seed=opts.seed, priority=opts.priority)
                cont, error = await self.generate(ids + token_ids, spec, RequestKind.answer)
                if cont is None:
                    sample.status, sample.message = ItemStatus.error, f"finishing the answer failed: {error}"
                    return sample
                more = cont.completions[0]
                sample.completion_tokens += len(more.token_ids)
                text, token_ids = text + more.text, token_ids + list(more.token_ids)
                verdict = parse_verdict(text, p.think_end, p.verdict_pattern)
                if p.reward_for(verdict.label) is not None:
                    sample.status, sample.label, sample.text = ItemStatus.ok, p.label_of(verdict.label), text
                    sample.probs = await self._probe(ids, token_ids, text, opts)
                    return sample
            await self._force(ids, text, token_ids, opts, sample)
        elif c.finish_reason == "length":
            sample.status = ItemStatus.truncated
        return sample

    async def _probe(self, ids: list[int], token_ids: list[int], text: str, opts: JudgeOptions
                     ) -> dict[str, float] | None:
        """The labels' probabilities where the judge wrote its label: one token generated after the
        judge's own tokens up to that position (the prefix cache holds them), with its top log-probs."""
        texts = self.wanted_label_texts(opts)
        if not texts:
            return None
        start = label_start(text, opts.profile)
        bound = None if start is None else token_boundary(self.engine.tokenizer, token_ids, text, start)
        if bound is None:
            return None
        n, gap = bound
        spec = SamplingSpec(max_tokens=1, temperature=0.0, logprobs=TOP_LOGPROBS, priority=opts.priority)
        gen, _ = await self.generate(ids + token_ids[:n], spec, RequestKind.probe)
        if gen is None:
            return None  # the probability is extra: its failure never fails the verdict
        return label_probs(self.engine.tokenizer, gen.completions[0].first_logprobs, texts, gap)

    async def _force(self, ids: list[int], text: str, token_ids: list[int], opts: JudgeOptions,
                     sample: Sample) -> None:
        """Close the thinking and ask the engine for the verdict alone, constrained to the labels."""
        p = opts.profile
        closed = bool(p.think_end) and p.think_end in text
        closing = ("" if closed else (p.think_end or "")) + (p.force_prefix or "")
        closing_ids = self.assets.closing_ids(p, closed)
        texts = self.wanted_label_texts(opts, forced=True)
        spec = SamplingSpec(max_tokens=self.assets.choice_room(p), temperature=0.0, choices=p.force_choices,
                            logprobs=TOP_LOGPROBS if texts else None, priority=opts.priority)
        gen, error = await self.generate(ids + token_ids + closing_ids, spec, RequestKind.force)
        if gen is None:
            sample.status, sample.message = ItemStatus.error, f"forcing the verdict failed: {error}"
            return
        forced = gen.completions[0]
        sample.completion_tokens += len(forced.token_ids)
        text = text + closing + forced.text
        verdict = parse_verdict(text, p.think_end, p.verdict_pattern)
        sample.text = text
        if p.reward_for(verdict.label) is not None:
            sample.status, sample.thinking = ItemStatus.forced, verdict.thinking
            sample.label = p.label_of(verdict.label)
            self.stats.forced_verdicts += 1
            if texts:  # the forced choice begins right after the closing: its first position decides
                sample.probs = label_probs(self.engine.tokenizer, forced.first_logprobs, texts)
        else:
            sample.status = ItemStatus.unparsed


def vote(samples: list[Sample], opts: JudgeOptions, usage: Usage) -> Judgment:
    """k samples -> one Judgment: the majority label, the mean reward over the samples with a verdict."""
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
    verdict, top = max(label_votes.items(), key=lambda kv: (kv[1], p.reward_for(kv[0])))
    forced_reward = opts.policy.forced  # None: a forced verdict pays its label's reward

    def paid(s: Sample) -> float:
        if s.status == ItemStatus.forced and forced_reward is not None:
            return forced_reward
        if opts.reward_mode == "prob" and s.probs is not None:
            return expected_reward(p, s.probs)
        return p.reward_for(s.label)

    reward = sum(paid(s) for s in decided) / len(decided)
    with_probs = [s.probs for s in decided if s.probs is not None]
    verdict_prob = sum(positive_prob(p, q) for q in with_probs) / len(with_probs) if with_probs else None
    status = ItemStatus.forced if any(s.status == ItemStatus.forced for s in decided) else ItemStatus.ok
    message = "the thinking budget ran out; the verdict was forced" if status == ItemStatus.forced else None
    return Judgment(status, reward=reward, verdict=verdict, votes=dict(votes), agreement=top / k, usage=usage,
                    reasoning=reasoning, outputs=outputs, message=message, verdict_prob=verdict_prob)


def sigmoid(x: float) -> float:
    """The logistic function, without overflow for scores far from 0."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def verified(outcome: VerifyOutcome | None) -> Judgment:
    """A result decided by the rule-based check alone."""
    if outcome is None:
        return Judgment(ItemStatus.invalid, source="verify", message="verification needs a reference for the item")
    if outcome.conclusive:
        return Judgment(ItemStatus.ok, reward=1.0 if outcome.status == "correct" else 0.0, verdict=outcome.status,
                        votes={outcome.status: 1}, agreement=1.0, source="verify", verify=outcome)
    status = {"timeout": ItemStatus.timeout, "error": ItemStatus.error}.get(outcome.status, ItemStatus.unparsed)
    return Judgment(status, source="verify", verify=outcome, message=outcome.message)
