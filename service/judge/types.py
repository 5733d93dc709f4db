"""The scorer's data: what goes in (``ScoreItem``, ``JudgeOptions``), what comes out (``Judgment``,
``ItemResult`` with one ``ItemStatus``), and the counters the metrics read (``ScorerStats``).

Plain data, with no behaviour beyond what follows from the fields (defaults, the options' part of the
cache key, an error judgment), so the API schemas and the metrics import these, not the scorer.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from enum import StrEnum

from service.judge.policy import RewardPolicy
from service.judge.profiles import Profile
from service.judge.verifier import VerifyOutcome


class ItemStatus(StrEnum):
    """Every item of every accepted request ends with exactly one of these."""

    ok = "ok"  # the judge gave a verdict; reward is set
    forced = "forced"  # the judge ran out of thinking budget; the verdict was forced; reward is set
    unparsed = "unparsed"  # the judge finished but no verdict could be read from its answer
    truncated = "truncated"  # the judge hit max_tokens before giving a verdict (forcing off)
    too_long = "too_long"  # the prompt does not fit the model's context (no engine call was made)
    timeout = "timeout"  # not judged by the request's deadline; its engine work was aborted
    invalid = "invalid"  # the item cannot be judged as given (e.g. the profile needs a reference)
    no_answer = "no_answer"  # the response has no final answer the profile can find (no engine call)
    degenerate = "degenerate"  # the response is a repetition loop (reward policy max_repetition; no engine call)
    partial = "partial"  # a rubric item some of whose criteria the judge could not decide; components keep the rest
    error = "error"  # the engine failed this item; retrying it may succeed


VERDICT_STATUSES = (ItemStatus.ok, ItemStatus.forced)


class ItemNote(StrEnum):
    """Advice on a result that its status does not carry: the item was judged (or decided) as asked, but
    the caller probably meant something else. Closed, documented here, and only ever added to."""

    # The item carried a reference and nothing consulted it: the profile never shows its judge one
    # (reference = "unused") and mode "judge" runs no rule-based check. Labels a trainer sends are then
    # silently ignored; a profile that shows the reference (libra-ref) or mode verify/hybrid/both uses them.
    reference_unused = "reference_unused"


@dataclass(frozen=True)
class ScoreItem:
    question: str
    response: str
    reference: str | None = None
    id: str | None = None
    criterion: str | None = None  # a rubric's criterion (per_criterion) or its list of criteria (holistic)

    @property
    def has_reference(self) -> bool:
        """An empty reference is none: trainers send "" for a sample without a label."""
        return self.reference is not None and self.reference != ""


# The options that cannot change a judgment the cache holds, each with its reason. Every other field of
# JudgeOptions is in the cache key, so a new option is too unless it is added here.
NOT_IN_CACHE_KEY = {
    "return_prompt": "an output option: the prompt rides on the ItemResult, not on the cached Judgment",
    "cache": "whether to read and write the cache, not what is judged",
    "mode": "the rule-based check runs beside the judge and is added to a copy of its judgment",
    "trust_rule": "which items reach the judge in mode hybrid, not how the judge judges them",
    "priority": "when the engine runs the requests, not what they generate",
}


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
    trust_rule: str = "correct"  # mode hybrid: which rule verdicts stand without the judge (judge/cascade.py)
    direct_first: bool = False  # a direct verdict (no thinking) first; thinking only where it is unsure (cascade.py)
    direct_threshold: float = 0.9  # the direct verdict's best-label probability at which it stands
    policy: RewardPolicy = field(default_factory=RewardPolicy)  # the profile's, with the request's overrides
    reward_mode: str = "verdict"  # verdict: the label's reward; prob: the expected reward under the label probabilities
    probe: bool = False  # read each natural verdict's label probabilities (one more engine request each)
    priority: int = 0  # the engine's scheduling priority for every request of these items (lower: sooner)

    @classmethod
    def from_profile(cls, profile: Profile, **overrides) -> JudgeOptions:
        s = profile.sampling
        base = dict(
            samples=int(s.get("samples", 1)),
            temperature=float(s.get("temperature", 0.0)),
            top_p=float(s.get("top_p", 1.0)),
            max_tokens=int(s.get("max_tokens", 1024)),
            max_thinking_tokens=int(s["max_thinking_tokens"]) if "max_thinking_tokens" in s else None,
            policy=profile.policy,
            trust_rule=profile.trust_rule,
            direct_first=profile.direct_first,
            direct_threshold=profile.direct_threshold,
        )
        given = {k: v for k, v in overrides.items() if v is not None}
        base.update(given)
        if base["samples"] > 1 and "temperature" not in given and "vote_temperature" in s:
            # Voting needs samples that differ: the profile's voting temperature (and top_p, unless the
            # request set one) when the request asks for k samples and no temperature.
            base["temperature"] = float(s["vote_temperature"])
            if "top_p" not in given:
                base["top_p"] = float(s.get("vote_top_p", base["top_p"]))
        return cls(profile=profile, **base)

    @property
    def uses_reference(self) -> bool:
        """Whether anything consults an item's reference: the judge, when the profile shows it (an
        ``optional`` one shows it whenever given), or math-verify in every mode but ``judge``, even
        beside a judge that is never shown it. Where this is false, a reference sent is ignored and the
        result carries ``ItemNote.reference_unused``."""
        return self.mode != "judge" or self.profile.shows_reference

    @property
    def forcing(self) -> bool:
        return self.max_thinking_tokens is not None and self.profile.can_force

    @property
    def use_cache(self) -> bool:
        return self.temperature == 0.0 if self.cache is None else self.cache

    def key_parts(self) -> tuple:
        """These options' part of the judgment key: each field in order, as it bears on the judgment,
        except those in ``NOT_IN_CACHE_KEY``."""
        parts: list = []
        for f in fields(self):
            if f.name in NOT_IN_CACHE_KEY:
                continue
            value = getattr(self, f.name)
            if f.name == "profile":
                parts.append(value.key)
            elif f.name == "max_thinking_tokens":
                parts.append(value if self.forcing else None)  # a budget only a forced verdict reads
            elif f.name == "policy":
                parts.extend(value.key_parts())
            elif f.name == "direct_threshold":
                parts.append(value if self.direct_first else None)  # read only by a direct-first judgment
            else:
                parts.append(value)
        return tuple(parts)


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


@dataclass(frozen=True)
class PairScores:
    """A pair item's two halves (``ScoreItemIn`` chosen/rejected): each one's raw score and status."""

    chosen: float | None
    rejected: float | None
    chosen_status: ItemStatus
    rejected_status: ItemStatus


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
    route: str | None = None  # mode hybrid: the cascade's route (judge/cascade.py Route); None elsewhere
    judge_pass: str | None = None  # direct-first: "direct" or "thinking", the pass that decided; None without it
    direct_prob: float | None = None  # direct-first: the direct verdict's best-label probability
    verify: VerifyOutcome | None = None  # the rule-based check, when one ran
    verify_agrees: bool | None = None  # did the judge and the check agree (both gave a verdict: modes both, hybrid)?
    verdict_prob: float | None = None  # mean probability of the best-rewarded label over the samples
    pair: PairScores | None = None  # a pair item: both halves (its reward is P(chosen > rejected))
    components: list | None = None  # a rubric item: its criteria's parts (judge/rubric.py Component), in order
    score: float | None = None  # a scalar reward model's raw score (the reward is it, or its sigmoid: reward_mode prob)

    @classmethod
    def from_exception(cls, exc: BaseException) -> Judgment:
        """The judgment of an item whose judging raised ``exc``: ``error`` (retrying it may succeed)."""
        return cls(ItemStatus.error, message=f"{type(exc).__name__}: {exc}")


@dataclass
class ItemResult:
    index: int
    id: str | None
    judgment: Judgment
    cached: bool = False  # served from the cache or from an identical item (no engine work)
    prompt: list[dict[str, str]] | None = None  # with return_prompt: the messages the judge was shown
    # Per item, not on the (cached, shared) Judgment: two items with one judgment may differ in whether
    # they carried a reference (a reference-free profile leaves it out of the judgment key).
    notes: tuple[ItemNote, ...] = ()


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
    scalar_scores: int = 0  # items a scalar reward model scored (classify requests that returned a score)
    statuses: Counter = field(default_factory=Counter)
    sources: Counter = field(default_factory=Counter)
    routes: Counter = field(default_factory=Counter)  # mode hybrid: items per cascade route
    direct_first: Counter = field(default_factory=Counter)  # direct-first judgments by the pass that decided
    direct_first_tokens: Counter = field(default_factory=Counter)  # generated tokens by pass (direct, thinking)
    verify_agreement: Counter = field(default_factory=Counter)  # "agree" / "disagree" (modes both and hybrid)
    references_unused: Counter = field(default_factory=Counter)  # profile name -> items whose reference was ignored
