"""The scorer: items in, one result per item out, in named stages.

    score:  clamp budgets -> [verify, hybrid: the rule-based check decides what it may (cascade.py)]
            -> judge the items:
    _judge_items: prepare (Preparer.prepare: render token-safe and token-faithful, truncate or
                  too_long, judgment key; prepare.py)
             -> reuse (decided early, cache hits, duplicates of an item in this request)
             -> launch (group priming, then one engine request per unique item; judging.py)
             -> await (the request's deadline; abort what is left) -> collect (one result per item)

A finished judgment task means the same to streaming and to collecting (``_outcome``).

Every unique item becomes its own engine request at once: the engine's continuous batching
interleaves them with the items of every other concurrent request. Cancelling ``score`` (the client
went away) cancels the pending generate calls, and vLLM aborts them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace

from service.engine.base import EngineDead, EngineError, JudgeEngine, RequestKind, SamplingSpec, new_request_id
from service.judge.assets import ProfileAssets
from service.judge.cache import InFlight, LruCache
from service.judge.cascade import RULE_DECIDES, Route, rule_first_route
from service.judge.judging import ItemJudge, verified
from service.judge.prepare import Prepared, Preparer
from service.judge.types import ItemNote, ItemResult, ItemStatus, JudgeOptions, Judgment, ScoreItem, ScorerStats
from service.judge.verifier import VerifyOutcome, VerifyPool

log = logging.getLogger(__name__)


class Scorer:
    """Scores items with any judge profile on one engine."""

    def __init__(self, engine: JudgeEngine, cache_entries: int = 100_000, cache_bytes: int = 256 * 2**20,
                 group_priming: bool = True, min_prime_tokens: int = 32, verifier: VerifyPool | None = None,
                 max_text_chars: int | None = None):
        self.engine = engine
        self.verifier = verifier
        self.stats = ScorerStats()
        assets = ProfileAssets(engine.tokenizer)  # each profile's assets built once, for preparing and judging
        self.preparer = Preparer(assets, engine.max_model_len, engine.model_name, max_text_chars)
        self.judge = ItemJudge(engine, self.preparer, assets, self.stats)
        self.cache: LruCache[Judgment] = LruCache(cache_entries, cache_bytes, size_of=_judgment_size)
        self.inflight: InFlight[Judgment] = InFlight()
        self.group_priming = group_priming
        self.min_prime_tokens = min_prime_tokens
        self.on_judgment: Callable[[float, float], None] | None = None  # (queue wait s, judge s) -> metrics

    async def score(self, items: list[ScoreItem], opts: JudgeOptions, timeout_s: float | None = None,
                    on_result: Callable[[ItemResult], None] | None = None) -> list[ItemResult]:
        """One result per item, in input order. Raises ``EngineDead`` if the engine died meanwhile.

        ``on_result`` is called once per item the moment its result is known (items decided without
        the engine and duplicates at once, judged items as each finishes), for streaming.

        Items not judged within ``timeout_s`` get status ``timeout`` and their engine work is aborted
        (unless another request is still waiting on the same judgment). ``opts.mode`` adds rule-based
        verification: ``verify`` (only the check), ``hybrid`` (the check where ``opts.trust_rule`` lets
        it decide, the judge for the rest: ``cascade.py``), ``both`` (the judge's reward, with the check
        and their agreement).

        Where nothing consults references (``JudgeOptions.uses_reference``), every item that carried
        one gets the note ``reference_unused`` and is counted in ``stats.references_unused``.
        """
        opts = self.preparer.clamp(opts)
        self.stats.items += len(items)
        emitted: set[int] = set()
        # Decided per request, before any result goes out: a streamed line carries the note too.
        ignored = set() if opts.uses_reference else {i for i, item in enumerate(items) if item.has_reference}

        def emit(r: ItemResult) -> None:
            if on_result is not None and r.index not in emitted:
                emitted.add(r.index)
                on_result(_noted(r, ignored))

        if opts.mode == "judge":
            results = await self._judge_items(items, opts, timeout_s, emit)
        else:
            results = await self._with_verify(items, opts, timeout_s, emit if on_result is not None else None)
        for r in results:
            self.stats.statuses[r.judgment.status.value] += 1
            self.stats.sources[r.judgment.source] += 1
            if r.judgment.route is not None:
                self.stats.routes[r.judgment.route] += 1
            emit(_noted(r, ignored))
        if ignored:
            self.stats.references_unused[opts.profile.name] += len(ignored)
        return results

    # -- the rule-based check ----------------------------------------------------------------------

    async def _with_verify(self, items: list[ScoreItem], opts: JudgeOptions, timeout_s: float | None,
                           emit: Callable[[ItemResult], None] | None) -> list[ItemResult]:
        """Modes verify, hybrid and both. Items the check (or the reward policy) decides are emitted at
        once; the judged ones as each finishes, mapped back to their place with the check beside them."""
        if self.verifier is None:
            raise EngineError("rule-based verification is not enabled on this server")
        # The reward policy holds in every mode: a junk response is refused before any check.
        refused = {i: j for i, item in enumerate(items) if (j := self.preparer.refused_by_policy(item, opts))}
        checked = [i for i, item in enumerate(items) if item.has_reference and i not in refused]
        outcomes: dict[int, VerifyOutcome] = dict(zip(checked, await asyncio.gather(
            *(self.verifier.check(items[i].reference, items[i].response) for i in checked)), strict=True))
        results: list[ItemResult | None] = [None] * len(items)
        to_judge: list[int] = []
        routes: dict[int, Route] = {}
        for i, item in enumerate(items):
            outcome = outcomes.get(i)
            if opts.mode == "hybrid" and i not in refused:
                routes[i] = rule_first_route(outcome, opts.trust_rule)
            if i in refused:
                results[i] = ItemResult(i, item.id, refused[i])
            elif opts.mode == "verify":
                results[i] = ItemResult(i, item.id, verified(outcome))
            elif routes.get(i) in RULE_DECIDES:
                results[i] = ItemResult(i, item.id, replace(verified(outcome), route=routes[i]))
            else:
                to_judge.append(i)
        if emit is not None:
            for r in results:
                if r is not None:
                    emit(r)
        if not to_judge:
            return results  # type: ignore[return-value]
        mapped: dict[int, ItemResult] = {}

        def back(r: ItemResult) -> ItemResult:
            """A judged sub-list result in its item's place, with the check and the route (once per item:
            the streamed line and the final result are the same object)."""
            i = to_judge[r.index]
            if i not in mapped:
                outcome = outcomes.get(i)
                j = replace(r.judgment, verify=outcome, route=routes.get(i))
                if outcome is not None and outcome.conclusive and j.reward is not None:
                    j.verify_agrees = (j.reward >= 0.5) == (outcome.status == "correct")
                    self.stats.verify_agreement["agree" if j.verify_agrees else "disagree"] += 1
                mapped[i] = ItemResult(i, items[i].id, j, cached=r.cached, prompt=r.prompt)
            return mapped[i]

        judged = await self._judge_items([items[i] for i in to_judge], opts, timeout_s,
                                         None if emit is None else (lambda r: emit(back(r))))
        for r in judged:
            results[to_judge[r.index]] = back(r)
        return results  # type: ignore[return-value]

    # -- the judge ---------------------------------------------------------------------------------

    async def _judge_items(self, items: list[ScoreItem], opts: JudgeOptions, timeout_s: float | None,
                           emit: Callable[[ItemResult], None] | None = None) -> list[ItemResult]:
        """Stage 1 is the Preparer's: every item rendered to prompt ids (or decided early: invalid,
        too_long); stages 2-5 below."""
        preps = await self.preparer.prepare(items, opts)
        results: list[ItemResult | None] = [None] * len(items)
        unique, duplicates = self._reuse(preps, opts, results)
        tasks = [asyncio.ensure_future(c) for c in self._launch(unique, opts)]
        if emit is not None:
            for r in results:  # decided without the engine: at once
                if r is not None:
                    emit(r)
            dups_of: dict[int, list[Prepared]] = defaultdict(list)
            for dup, first in duplicates:
                dups_of[first.index].append(dup)
            for prep, task in zip(unique, tasks, strict=True):
                task.add_done_callback(lambda t, prep=prep: self._emit_finished(prep, t, dups_of[prep.index], emit))
        pending = await self._await(tasks, timeout_s)
        self._collect(unique, tasks, pending, duplicates, results, timeout_s)
        return results  # type: ignore[return-value]

    def _reuse(self, preps: list[Prepared], opts: JudgeOptions, results: list[ItemResult | None]
               ) -> tuple[list[Prepared], list[tuple[Prepared, Prepared]]]:
        """Stage 2: fill the results that need no engine work; return the unique items to judge and
        the (duplicate, first) pairs that will share a judgment."""
        first_by_key: dict[str, Prepared] = {}
        duplicates: list[tuple[Prepared, Prepared]] = []
        for prep in preps:
            if prep.early is not None:
                results[prep.index] = ItemResult(prep.index, prep.item.id, prep.early, prompt=prep.prompt)
            elif prep.key in first_by_key:
                duplicates.append((prep, first_by_key[prep.key]))
            else:
                cached = self.cache.get(prep.key) if opts.use_cache else None
                if cached is not None:
                    self.stats.cache_hits += 1
                    self._count_saved(cached)
                    results[prep.index] = ItemResult(prep.index, prep.item.id, cached, cached=True,
                                                     prompt=prep.prompt)
                else:
                    first_by_key[prep.key] = prep
        return list(first_by_key.values()), duplicates

    def _launch(self, unique: list[Prepared], opts: JudgeOptions) -> list:
        """Stage 3: coroutines for the unique items; items sharing a question wait for their group's primer."""
        primers: dict[int, asyncio.Future] = {}
        if self.group_priming:
            groups: dict[tuple[str, str | None], list[Prepared]] = defaultdict(list)
            for prep in unique:
                if prep.key not in self.inflight:
                    groups[(prep.item.question, prep.item.reference)].append(prep)
            for members in groups.values():
                if len(members) < 2:
                    continue
                prefix = _common_prefix([m.ids for m in members])
                if len(prefix) >= self.min_prime_tokens:
                    primer = asyncio.ensure_future(self._prime(prefix, opts.priority))
                    for m in members:
                        primers[m.index] = primer
        return [self._judge_shared(prep, opts, primers.get(prep.index)) for prep in unique]

    async def _await(self, tasks: list[asyncio.Future], timeout_s: float | None) -> set:
        """Stage 4: wait for the judgments until the deadline; abort what is left (also when the caller
        is cancelled: the client went away). Returns the tasks the deadline cut off."""
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
        finally:
            late = {t for t in tasks if not t.done()}
            for task in late:
                task.cancel()
            if late:
                await asyncio.gather(*late, return_exceptions=True)
        return pending

    def _collect(self, unique: list[Prepared], tasks: list[asyncio.Future], pending: set,
                 duplicates: list[tuple[Prepared, Prepared]], results: list[ItemResult | None],
                 timeout_s: float | None) -> None:
        """Stage 5: a result for every judged item and every duplicate."""
        for prep, task in zip(unique, tasks, strict=True):
            if task in pending:
                judgment, joined = Judgment(ItemStatus.timeout, message=(
                    f"not judged within the request's deadline of {timeout_s:g} s")), False
            else:
                judgment, joined = _outcome(task)
            results[prep.index] = ItemResult(prep.index, prep.item.id, judgment, cached=joined, prompt=prep.prompt)
            if joined:
                self.stats.dedup_hits += 1
                self._count_saved(judgment)
        for prep, first in duplicates:
            judgment = results[first.index].judgment
            results[prep.index] = ItemResult(prep.index, prep.item.id, judgment, cached=True, prompt=prep.prompt)
            self.stats.dedup_hits += 1
            self._count_saved(judgment)

    @staticmethod
    def _emit_finished(prep: Prepared, task: asyncio.Future, dups: list[Prepared],
                       emit: Callable[[ItemResult], None]) -> None:
        """Stream a judged item (and its duplicates) as soon as its judgment is done. Cancelled tasks
        (deadline, disconnect) and a dead engine are left to the collect stage and the caller."""
        if task.cancelled() or isinstance(task.exception(), EngineDead):
            return
        judgment, joined = _outcome(task)
        emit(ItemResult(prep.index, prep.item.id, judgment, cached=joined, prompt=prep.prompt))
        for dup in dups:
            emit(ItemResult(dup.index, dup.item.id, judgment, cached=True, prompt=dup.prompt))

    # -- helpers -----------------------------------------------------------------------------------

    def _count_saved(self, j: Judgment) -> None:
        self.stats.saved_prompt_tokens += j.usage.prompt_tokens
        self.stats.saved_completion_tokens += j.usage.completion_tokens

    async def _prime(self, prefix: list[int], priority: int = 0) -> None:
        """Prefill a group's shared prefix once so vLLM's prefix cache serves the whole group."""
        self.stats.primed_groups += 1
        try:
            if self.engine.runner == "pooling":  # a scalar model: one classify request fills the prefix cache
                await self.engine.classify(prefix, new_request_id(RequestKind.prime), priority=priority)
            else:
                await self.engine.generate(prefix, SamplingSpec(max_tokens=1, priority=priority),
                                           new_request_id(RequestKind.prime))
        except EngineDead:
            raise
        except Exception as exc:  # priming is an optimisation: never fail items because of it
            log.warning("group priming failed: %s", exc)

    async def _judge_shared(self, prep: Prepared, opts: JudgeOptions, primer: asyncio.Future | None):
        """The item's judgment, shared with every concurrent request for the same key: (judgment, joined)."""
        async def start() -> Judgment:
            t0 = time.perf_counter()
            if primer is not None:
                await asyncio.shield(primer)
            t1 = time.perf_counter()
            judgment = await self.judge.judge(prep.ids, opts)
            if self.on_judgment is not None:
                self.on_judgment(t1 - t0, time.perf_counter() - t1)
            judgment.truncated_input = prep.truncated_input
            if opts.use_cache and judgment.status != ItemStatus.error:
                self.cache.put(prep.key, judgment)
            return judgment

        return await self.inflight.run(prep.key, start)


def _noted(r: ItemResult, ignored: set[int]) -> ItemResult:
    """``r`` with its notes, set in place: a result object belongs to this request alone (its judgment
    may be shared with other items and requests, so the note never goes there)."""
    if r.index in ignored and ItemNote.reference_unused not in r.notes:
        r.notes = (*r.notes, ItemNote.reference_unused)
    return r


def _outcome(task: asyncio.Future) -> tuple[Judgment, bool]:
    """What a finished (not cancelled) judgment task means: (judgment, joined). A failure is the item's
    error judgment, never the request's."""
    exc = task.exception()
    if exc is not None:
        return Judgment.from_exception(exc), False
    return task.result()


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
