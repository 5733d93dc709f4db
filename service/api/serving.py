"""The serving layer: one object on ``app.state.serving`` that owns a scoring request from its route to
the scorer, for every endpoint.

    route (HTTP in/out only) -> ScoringService.score_request (/score) or .score_items (trainer endpoints)
    -> options / default_options (the request rules that need server state: profiles, engine, settings)
    -> _start (refuse when not serving: 503; admit whole or 429; before any byte is sent)
    -> _scored (score; a client that goes away aborts the engine work: 499) -> Scorer (judge/)

Plain and streamed requests go through the same two places: ``_start`` is the only admission and
``_scored`` the only disconnect watcher; a stream (``_lines``) only turns the results it emits into
NDJSON lines. Rules a request can be checked against on its own are its model's validators
(``protocol.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

from fastapi import Request

from service.api.admission import Admission
from service.api.errors import ApiError, ClientClosed, ErrorCode
from service.api.protocol import JudgeBuild, ScoreRequest, VersionResponse
from service.api.results import ScoreResponse, ScoreResult, StreamDone
from service.config import Settings
from service.engine.base import JudgeEngine
from service.judge.cascade import why_no_direct
from service.judge.prob import why_no_prob
from service.judge.profiles import Profile
from service.judge.rubric import Criterion, RubricMap
from service.judge.scalar import PairMap, normalize_groups
from service.judge.scorer import Scorer
from service.judge.subitems import SubItems
from service.judge.types import ItemNote, ItemResult, JudgeOptions, Judgment, ScoreItem
from service.judge.verifier import VerifyPool
from service.lifecycle import Lifecycle
from service.metrics import ServiceMetrics, versions

log = logging.getLogger(__name__)


class ScoringService:
    """Built with the app; ``attach`` gives it the engine and what lives as long as the engine."""

    def __init__(self, settings: Settings, profiles: dict[str, Profile], default_judge: str,
                 admission: Admission, metrics: ServiceMetrics):
        self.settings = settings
        self.profiles = profiles
        self.default_judge = default_judge
        self.admission = admission
        self.metrics = metrics
        self.engine: JudgeEngine | None = None
        self.scorer: Scorer | None = None
        self.lifecycle: Lifecycle | None = None
        self.verifier: VerifyPool | None = None
        self.special_tokens: tuple[str, ...] = ()
        self._warned_unused: set[str] = set()  # judges already logged for ignoring references

    def attach(self, engine: JudgeEngine, scorer: Scorer, lifecycle: Lifecycle, verifier: VerifyPool | None) -> None:
        self.engine, self.scorer, self.lifecycle, self.verifier = engine, scorer, lifecycle, verifier
        # What trainers' decoded responses may end with (OpenRLHFRequest.to_items strips them). Longest
        # first: the stripper takes the first token a response ends with, and one may end another.
        # A tokenizer without the attribute has none to strip.
        specials = getattr(engine.tokenizer, "all_special_tokens", [])
        self.special_tokens = tuple(sorted(set(specials), key=len, reverse=True))

    # -- entry points ------------------------------------------------------------------------------

    async def score_request(self, body: ScoreRequest, request: Request) -> ScoreResponse | AsyncIterator[bytes]:
        """Answer a /score request: the response, or with ``stream`` its NDJSON lines. A streamed request
        is admitted before this returns, so a 429 or 503 is still an ordinary error answer."""
        opts, timeout_s = self.options(body)
        items = body.to_items()
        # An item that is more than one judgment: a pair (two scores), a rubric (its criteria). The plan maps
        # the judged sub-items back to the items.
        plan: SubItems | None = None
        if body.has_pairs:
            plan = PairMap([i.is_pair for i in body.items])
        elif opts.profile.rubric_strategy is not None:
            plan = RubricMap(items, body.rubrics(), opts.profile.rubric_strategy, body.aggregation or "weighted",
                             self.settings.max_rubric_criteria)
            items = plan.flat
        if body.stream:
            decided: asyncio.Queue[ItemResult] = asyncio.Queue()
            on_result = decided.put_nowait if plan is None else plan.streaming(decided.put_nowait)
            for r in plan.decided_now() if plan is not None else ():  # items with nothing to judge: at once
                decided.put_nowait(r)
            work = self._start(request, items, opts, timeout_s, on_result=on_result)
            return self._lines(request, items, opts, work, decided, plan)
        results = await self.score(request, items, opts, timeout_s)
        if plan is not None:
            results = plan.merge(results)
        if body.normalize == "group":
            results = normalize_groups(results, items, [i.group for i in body.items])
        return ScoreResponse.model_construct(results=[ScoreResult.from_result(r) for r in results],
                                             model=self.engine.model_name, judge=opts.profile.name)

    async def score_items(self, request: Request, items: list[ScoreItem], judge: str | None = None,
                          reward_mode: str = "verdict", rubrics: list[list[Criterion] | str] | None = None
                          ) -> list[ItemResult]:
        """A trainer endpoint's items (the request has turned itself into them), scored with the
        profile's defaults and the trainer endpoints' deadline. A rubric judge judges each item against its
        entry of ``rubrics`` (a string: why the trainer's label is no rubric; the item is invalid), weighted."""
        opts, timeout_s = self.default_options(judge, reward_mode, len(items))
        if opts.profile.rubric_strategy is None:
            return await self.score(request, items, opts, timeout_s)
        plan = RubricMap(items, rubrics or [None] * len(items), opts.profile.rubric_strategy, "weighted",
                         self.settings.max_rubric_criteria)
        return plan.merge(await self.score(request, plan.flat, opts, timeout_s))

    async def score(self, request: Request, items: list[ScoreItem], opts: JudgeOptions, timeout_s: float
                    ) -> list[ItemResult]:
        """The items' results in order, and the access log's fields. Raises ``ClientClosed`` (499) when
        the client went away, ``EngineDead`` when the engine died meanwhile."""
        if not items:  # an empty shard: nothing to admit, but a service that takes no work still says so
            self.lifecycle.check_serving()
            return []
        try:
            results = await self._start(request, items, opts, timeout_s)
        except ClientClosed:
            request.state.statuses = {"cancelled": len(items)}
            raise
        request.state.statuses = dict(Counter(r.judgment.status.value for r in results))
        return results

    def version(self) -> VersionResponse:
        """``GET /version``: the build, the served model and each profile's content hash."""
        return VersionResponse(**versions(), model=self.engine.model_name,
                               judges=[JudgeBuild(name=name, sha256=p.content_sha256)
                                       for name, p in sorted(self.profiles.items())])

    # -- request rules that need the server's state --------------------------------------------------

    def profile(self, name: str | None) -> Profile:
        name = name or self.default_judge
        profile = self.profiles.get(name)
        if profile is None:
            raise ApiError(ErrorCode.invalid_request,
                           f"unknown judge {name!r}; available: {', '.join(sorted(self.profiles))}", "judge")
        return profile

    def options(self, body: ScoreRequest) -> tuple[JudgeOptions, float]:
        """A /score request's options and deadline, checked against this server's profiles, engine and
        settings; raises a 422 envelope naming the field."""
        settings = self.settings
        profile = self._rubric_judge(body, self.profile(body.judge))
        n = len(body.items) + sum(i.is_pair for i in body.items)  # a pair is two responses to score
        if n > settings.max_items_per_request:
            pairs = " (a pair counts as two)" if n > len(body.items) else ""
            raise ApiError(ErrorCode.invalid_request,
                           f"{n} items{pairs} exceeds the limit of {settings.max_items_per_request}", "items")
        self._check_kind(profile)
        if profile.scalar:
            self._check_scalar(body, profile)
        else:
            for field, given, what in (("items", body.has_pairs, "pairs (chosen, rejected)"),
                                       ("normalize", body.normalize != "none", "normalize 'group'")):
                if given:
                    raise ApiError(ErrorCode.invalid_request, f"{what} apply to scalar reward models' scores; judge "
                                   f"{profile.name!r} is generative (its rewards are verdicts)", field)
        opts = body.to_options(profile)
        if opts.samples > settings.max_samples:
            raise ApiError(ErrorCode.invalid_request, f"samples must be at most {settings.max_samples}", "samples")
        if opts.samples > 1 and opts.temperature == 0.0:
            # The profile's sampling is greedy (an explicit temperature 0 with samples > 1 never gets
            # here: ScoreRequest refuses it).
            raise ApiError(ErrorCode.invalid_request, f"samples > 1 needs temperature > 0: judge "
                           f"{profile.name!r} has no vote_temperature; set temperature > 0", "samples")
        self._check_reward_mode(profile, body.reward_mode)
        probe = (settings.verdict_prob if body.verdict_prob is None else body.verdict_prob) and not profile.scalar
        opts = replace(opts, probe=probe, priority=self.priority(body.priority, len(body.items)))
        if body.max_thinking_tokens is not None and not profile.can_force:
            raise ApiError(ErrorCode.invalid_request,
                           f"judge {profile.name!r} cannot force a verdict, so it takes no max_thinking_tokens",
                           "max_thinking_tokens")
        if opts.max_thinking_tokens is not None and opts.max_thinking_tokens > opts.max_tokens:
            raise ApiError(ErrorCode.invalid_request,
                           f"max_thinking_tokens must be at most the judge's max_tokens ({opts.max_tokens})",
                           "max_thinking_tokens")
        if body.seed is not None and self.engine is not None and not self.engine.seeded_sampling:
            raise ApiError(ErrorCode.invalid_request, "seed is not supported by this server's engine (vLLM on "
                           "CPU cannot rewind a seeded sampler); leave it out, or use a GPU server", "seed")
        if opts.direct_first and (why := why_no_direct(profile)):
            raise ApiError(ErrorCode.invalid_request, f"direct_first is not available: {why}", "direct_first")
        if body.direct_threshold is not None and not opts.direct_first:
            raise ApiError(ErrorCode.invalid_request, f"direct_threshold applies only with direct_first (off for "
                           f"judge {profile.name!r}; set direct_first: true)", "direct_threshold")
        if body.mode != "judge" and self.verifier is None:
            raise ApiError(ErrorCode.invalid_request, f"mode {body.mode!r} needs rule-based verification, which "
                           "is off on this server (LIBRA_VERIFY_WORKERS=0)", "mode")
        if body.timeout_s is not None and body.timeout_s > settings.max_timeout_s:
            raise ApiError(ErrorCode.invalid_request, f"timeout_s must be at most {settings.max_timeout_s:g}",
                           "timeout_s")
        return opts, body.timeout_s or settings.default_timeout_s

    def default_options(self, judge: str | None, reward_mode: str = "verdict", items: int = 1
                        ) -> tuple[JudgeOptions, float]:
        """A trainer endpoint's options: the profile's defaults and the trainer endpoints' deadline."""
        profile = self.profile(judge)
        self._check_kind(profile)
        self._check_reward_mode(profile, reward_mode)
        opts = JudgeOptions.from_profile(profile, reward_mode=reward_mode,
                                         probe=self.settings.verdict_prob and not profile.scalar,
                                         priority=self.priority(None, items))
        return opts, self.settings.trainer_timeout_s

    def _rubric_judge(self, body: ScoreRequest, profile: Profile) -> Profile:
        """The profile that judges this request's rubrics: the asked one, or the one it names for the asked
        ``rubric_strategy``; a 422 for rubric options a profile cannot take."""
        strategy = body.rubric_strategy
        if profile.rubric_strategy is None:
            for field, given in (("rubric", body.has_rubrics), ("rubric_strategy", strategy is not None),
                                 ("aggregation", body.aggregation is not None)):
                if given:
                    raise ApiError(ErrorCode.invalid_request, f"judge {profile.name!r} does not judge rubrics; pick "
                                   "a rubric judge (GET /judges: rubric), e.g. rubric-criterion or rubric-holistic",
                                   field)
            return profile
        if strategy is not None and strategy != profile.rubric_strategy:
            partner = profile.rubric_partners.get(strategy)
            if partner is None:
                raise ApiError(ErrorCode.invalid_request, f"judge {profile.name!r} judges rubrics "
                               f"{profile.rubric_strategy} and names no {strategy} judge ([rubric] {strategy})",
                               "rubric_strategy")
            profile = self.profile(partner)
        if profile.rubric_strategy == "holistic" and body.aggregation is not None:
            raise ApiError(ErrorCode.invalid_request, f"judge {profile.name!r} rates the whole rubric at once "
                           "(holistic): there are no per-criterion verdicts to aggregate", "aggregation")
        if body.mode != "judge":
            raise ApiError(ErrorCode.invalid_request, f"mode {body.mode!r} checks a final answer against a reference; "
                           "a rubric is judged criterion by criterion (mode judge)", "mode")
        return profile

    @property
    def runner(self) -> str:
        """What this server's engine runs its model as: "generate" (a judge) or "pooling" (a scalar model)."""
        return getattr(self.engine, "runner", "generate") if self.engine is not None else "generate"

    def _check_kind(self, profile: Profile) -> None:
        """A profile of the kind this server's engine runs, or a 422 saying which kind it runs."""
        if profile.scalar != (self.runner == "pooling"):
            model = self.engine.model_name if self.engine is not None else "its model"
            runs = "a scalar reward model" if self.runner == "pooling" else "a generative judge"
            raise ApiError(ErrorCode.invalid_request, f"judge {profile.name!r} is a {profile.kind} profile, and this "
                           f"server runs {model} as {runs} (GET /judges: kind; GET /limits: runner); pick a "
                           f"profile of that kind or a server started with this one", "judge")

    @staticmethod
    def _check_scalar(body: ScoreRequest, profile: Profile) -> None:
        """What has no meaning for a scalar reward model is refused, not ignored: it samples nothing, thinks
        not at all and gives no verdict."""
        refused = {
            "samples": (body.samples is not None and body.samples > 1, "voting needs sampled verdicts"),
            "temperature": (body.temperature is not None, "it samples nothing"),
            "top_p": (body.top_p is not None, "it samples nothing"),
            "seed": (body.seed is not None, "it samples nothing"),
            "max_thinking_tokens": (body.max_thinking_tokens is not None, "it does not think"),
            "return_reasoning": (body.return_reasoning, "it writes no reasoning"),
            "direct_first": (bool(body.direct_first), "it gives no verdict"),
            "direct_threshold": (body.direct_threshold is not None, "it gives no verdict"),
            "verdict_prob": (bool(body.verdict_prob), "it gives no verdict (reward_mode prob is its score's sigmoid)"),
            "mode": (body.mode in ("hybrid", "both"), "its score is not a verdict to set beside math-verify's"),
        }
        for field, (given, why) in refused.items():
            if given:
                raise ApiError(ErrorCode.invalid_request, f"{field} does not apply to judge {profile.name!r}, a scalar "
                               f"reward model: {why}", field)

    @staticmethod
    def _check_reward_mode(profile: Profile, reward_mode: str) -> None:
        if profile.scalar:  # prob: the score's sigmoid, always available
            return
        if reward_mode == "prob" and (why := why_no_prob(profile)):
            raise ApiError(ErrorCode.invalid_request, f"reward_mode 'prob' is not available: {why}", "reward_mode")

    @property
    def scheduling_policy(self) -> str:
        return self.engine.scheduling_policy if self.engine is not None else "fcfs"

    def priority(self, asked: int | None, items: int) -> int:
        """The engine priority of a request's items: the request's, or small requests' default; 0 (and
        the request's priority ignored) unless the engine schedules by priority."""
        if self.scheduling_policy != "priority":
            return 0
        if asked is not None:
            return asked
        small = self.settings.small_request_items
        return self.settings.small_request_priority if small and items <= small else 0

    def reward_or_failure(self, result: ItemResult) -> float:
        """The reward a trainer endpoint reports: the judge's, or the configured failure reward."""
        reward = result.judgment.reward
        return reward if reward is not None else self.settings.failure_reward

    # -- admission, scoring, disconnects ---------------------------------------------------------------

    def _start(self, request: Request, items: list[ScoreItem], opts: JudgeOptions, timeout_s: float,
               on_result: Callable[[ItemResult], None] | None = None) -> asyncio.Task[list[ItemResult]]:
        """Admit the items and start scoring them: 503 when not serving, the items whole or 429. Not a
        coroutine, so that a stream is refused before its first byte. The admission is released when
        the task ends, however it ends (even cancelled before it ran)."""
        n = len(items)
        self.lifecycle.check_serving()
        if not self.admission.try_admit(n):
            self.metrics.rejections.labels("rate_limited").inc()
            raise ApiError(ErrorCode.rate_limited,
                           f"the server has {self.admission.pending} items in progress (budget "
                           f"{self.admission.budget}); retry later",
                           headers={"Retry-After": str(self.admission.retry_after(n))})
        request.state.items = n
        request.state.judge = opts.profile.name
        task = asyncio.ensure_future(self._scored(request, items, opts, timeout_s, on_result))
        task.add_done_callback(lambda _: self.admission.release(n))
        return task

    async def _scored(self, request: Request, items: list[ScoreItem], opts: JudgeOptions, timeout_s: float,
                      on_result: Callable[[ItemResult], None] | None) -> list[ItemResult]:
        """Score until done or until the client goes away, whichever comes first. On a disconnect the
        scoring is cancelled (the scorer aborts its engine work) and ``ClientClosed`` raised."""
        started = time.perf_counter()
        work = asyncio.ensure_future(self.scorer.score(items, opts, timeout_s=timeout_s, on_result=on_result))
        gone = asyncio.ensure_future(_until_disconnect(request))
        try:
            await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not work.done():  # the client went away (or this task was cancelled): abort the work
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
        if work.cancelled():
            raise ClientClosed
        results = work.result()
        self.metrics.observe_items(results, time.perf_counter() - started)
        self._warn_unused_references(request, results, opts)
        return results

    def _warn_unused_references(self, request: Request, results: list[ItemResult], opts: JudgeOptions) -> None:
        """Say it in the log when references were ignored: the trainer routes' replies have fixed shapes
        with no room for the note, and a trainer that sends labels to a reference-free profile otherwise
        trains on a judge that never sees them. Once per judge per process (a training run would repeat
        it every step); libra_references_unused_total keeps counting."""
        name = opts.profile.name
        if name in self._warned_unused:
            return
        n = sum(ItemNote.reference_unused in r.notes for r in results)
        if not n:
            return
        self._warned_unused.add(name)
        if opts.profile.scalar:
            why = "it is a scalar reward model, never shown references"
        else:
            why = ("its profile's reference is 'unused'. To use them, pick a profile that shows the reference "
                   "(libra-ref for libra) or mode hybrid/verify (/score, LIBRA_MODE)")
        log.warning("judge %r ignores references: %d of %d items on %s carried one and the judge was not shown it "
                    "(%s); this is logged once per judge, libra_references_unused_total counts every item "
                    "(request %s)", name, n, len(results), request.url.path, why,
                    getattr(request.state, "request_id", "-"))

    async def _lines(self, request: Request, items: list[ScoreItem], opts: JudgeOptions,
                     work: asyncio.Task[list[ItemResult]], decided: asyncio.Queue[ItemResult],
                     plan: SubItems | None = None) -> AsyncIterator[bytes]:
        """A streamed answer: each result as an NDJSON line the moment it is decided, then the final line.
        Once the stream has begun nothing is dropped: if the engine dies, every item not yet sent gets
        an ``error`` line and the final line still comes. A client that left just ends it."""
        n = len(items) if plan is None else len(plan.slots)  # result lines: one per item (a pair, a rubric: one)
        model, judge = self.engine.model_name, opts.profile.name
        sent: set[int] = set()
        statuses: Counter = Counter()

        def line(r: ItemResult) -> bytes:
            sent.add(r.index)
            statuses[r.judgment.status.value] += 1
            return ScoreResult.from_result(r).model_dump_json().encode() + b"\n"

        def client_left() -> bool:
            return work.done() and (work.cancelled() or isinstance(work.exception(), ClientClosed))

        getter: asyncio.Future[ItemResult] | None = None
        try:
            while (not work.done() or not decided.empty()) and not client_left():
                if not decided.empty():
                    yield line(decided.get_nowait())
                    continue
                getter = asyncio.ensure_future(decided.get())
                await asyncio.wait({getter, work}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield line(getter.result())
                else:
                    getter.cancel()
            if client_left():
                request.state.statuses = {"cancelled": n - len(sent)}
                return
            failure = work.exception()
            if failure is not None:
                for i in range(n):
                    if i not in sent and (plan is None or plan.slots[i]):  # (one with nothing to judge was sent first)
                        item = items[i if plan is None else plan.slots[i][0]]
                        ignored = item.has_reference and not opts.uses_reference
                        yield line(ItemResult(i, item.id, Judgment.from_exception(failure),
                                              notes=(ItemNote.reference_unused,) if ignored else ()))
            request.state.statuses = dict(statuses)
            done = StreamDone(items=n, statuses=dict(statuses), model=model, judge=judge)
            yield done.model_dump_json().encode() + b"\n"
        finally:
            if getter is not None:
                getter.cancel()
            if not work.done():  # the response stopped before the scoring did: abort it too
                work.cancel()
            await asyncio.gather(work, return_exceptions=True)


def serving(request: Request) -> ScoringService:
    return request.app.state.serving


async def _until_disconnect(request: Request) -> None:
    """Returns when the client goes away. The body is already read, so only a disconnect can arrive."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
