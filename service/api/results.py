"""The /score answer: one ``ScoreResult`` per item (built from the scorer's ``ItemResult`` without validation),
the whole ``ScoreResponse``, and a stream's lines (``StreamDone``, ``STREAM_RESPONSE``). The requests are in
``protocol.py``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from service.judge.cascade import PASSES, Route
from service.judge.types import ItemNote, ItemResult, ItemStatus


class UsageOut(BaseModel):
    prompt_tokens: int = Field(description="Prompt tokens of this item's judgment.")
    completion_tokens: int = Field(description="Tokens the judge generated for it (all samples).")


class VerifyOut(BaseModel):
    status: str = Field(description="correct, incorrect, inconclusive (nothing parseable), timeout or error.")
    message: str | None = None


class SampleOut(BaseModel):
    text: str = Field(description="What the judge generated: thinking and answer (a forced verdict included).")
    verdict: str | None = Field(description="This sample's verdict label; null without one.")
    status: ItemStatus = Field(description="ok, forced, unparsed, truncated or error, for this sample.")


class ComponentOut(BaseModel):
    id: str | None = Field(description="The criterion's id, if it had one.")
    index: int = Field(description="Its position in the rubric.")
    weight: float
    polarity: Literal["positive", "negative"]
    veto: bool
    status: ItemStatus | None = Field(description="This criterion's judgment's status (null for holistic: one "
                                      "rating for the whole rubric).")
    verdict: str | None = Field(description="The judge's verdict on this criterion (YES/NO).")
    reward: float | None = Field(description="The criterion's value: 1 satisfied, 0 not (with reward_mode prob, the "
                                 "probability it is satisfied); null when undecided.")
    verdict_prob: float | None = None
    reasoning: list[str] | None = Field(None, description="With return_reasoning: the judge's thinking on it.")
    message: str | None = None

    @classmethod
    def of(cls, c) -> ComponentOut:
        j = c.judgment
        return cls.model_construct(
            id=c.criterion.id, index=c.index, weight=c.criterion.size,
            polarity="positive" if c.criterion.positive else "negative", veto=c.criterion.veto,
            status=None if j is None else j.status, verdict=None if j is None else j.verdict,
            reward=None if j is None else j.reward, verdict_prob=None if j is None else j.verdict_prob,
            reasoning=None if j is None else j.reasoning, message=None if j is None else j.message)


class PairOut(BaseModel):
    chosen: float | None = Field(description="The chosen response's raw score; null when it got none.")
    rejected: float | None = Field(description="The rejected response's raw score; null when it got none.")
    chosen_status: ItemStatus
    rejected_status: ItemStatus


class PromptMessage(BaseModel):
    role: str
    content: str


class ScoreResult(BaseModel):
    id: str | None = Field(description="The item's id, if it had one.")
    index: int = Field(description="Position of the item in the request.")
    status: ItemStatus = Field(description="ok, forced, unparsed, truncated, too_long, timeout, invalid, no_answer, "
                               "degenerate, partial (a rubric item with undecided criteria) or error (docs/api.md: "
                               "Item statuses).")
    reward: float | None = Field(description="Mean reward over the samples that gave a verdict; null without one.")
    verdict_prob: float | None = Field(None, description="The judge's probability of the best-rewarded label at "
                                       "the verdict position, normalised over the labels (mean over samples); null "
                                       "where it cannot be read.")
    verdict: str | None = Field(description="The majority verdict label; null without one.")
    votes: dict[str, int] = Field(description="Samples per verdict label, plus unparsed/truncated counts.")
    agreement: float | None = Field(description="Share of samples that gave the majority verdict.")
    cached: bool = Field(description="True when no engine work was done for this item (cache or duplicate).")
    usage: UsageOut
    truncated_input: bool = Field(False, description="The response was shortened to fit the model's context.")
    reasoning: list[str] | None = Field(None, description="The judge's thinking per sample, when requested.")
    outputs: list[SampleOut] | None = Field(None, description="Each sample's full output, with return_reasoning.")
    prompt: list[PromptMessage] | None = Field(None, description="The judge's prompt, with return_prompt.")
    message: str | None = Field(None, description="Why the item is not ok.")
    source: Literal["judge", "verify"] = Field("judge", description="Which decided the reward.")
    route: Route | None = Field(
        None, description="Mode hybrid: the cascade's route. rule_correct / rule_incorrect: math-verify decided "
        "(rule_incorrect only with trust_rule conclusive); judge_rule_incorrect, judge_rule_inconclusive, "
        "judge_no_reference: the judge decided, and why it was asked. Null in the other modes and for items the "
        "reward policy refused.")
    judge_pass: Literal[PASSES] | None = Field(
        None, description="With direct_first: which pass decided: direct (the verdict without thinking was sure "
        "enough) or thinking (it was not, and the full judgment decided; usage counts both). Null without it.")
    direct_prob: float | None = Field(None, description="With direct_first: the direct verdict's best-label "
                                      "probability (null where it could not be read).")
    components: list[ComponentOut] | None = Field(
        None, description="A rubric item: each criterion's part, in the rubric's order (docs/rubrics.md).")
    score: float | None = Field(None, description="Scalar reward models: the model's raw score (the reward is "
                                "it, its sigmoid with reward_mode prob, or its group-normalised value with normalize "
                                "group); for a pair, score(chosen) - score(rejected). Null for generative judges.")
    pair: PairOut | None = Field(None, description="A pair item's two scores; reward is P(chosen > rejected).")
    verify: VerifyOut | None = Field(None, description="The rule-based check, when one ran (modes other than judge).")
    verify_agrees: bool | None = Field(None, description="Whether the judge and the check agree, where both "
                                         "gave a verdict: mode both, and mode hybrid's judge_rule_incorrect route "
                                         "(false: the judge overturned the rule's rejection).")
    notes: list[ItemNote] = Field(default_factory=list, description="Advice the status does not carry (empty "
                                  "when there is none). reference_unused: the item has a reference but nothing "
                                  "consulted it (the profile's reference is 'unused' and mode is judge); pick a "
                                  "profile that shows it (libra-ref) or mode hybrid/verify to use it.")

    @classmethod
    def from_result(cls, r: ItemResult) -> ScoreResult:
        # Built from the scorer's own typed values, so no validation (it was a tenth of the front
        # end's per-item cost): model_construct, for the nested models too.
        j = r.judgment
        return cls.model_construct(
            id=r.id, index=r.index, status=j.status, reward=j.reward, verdict_prob=j.verdict_prob, verdict=j.verdict,
            votes=j.votes,
            agreement=j.agreement, cached=r.cached,
            usage=UsageOut.model_construct(prompt_tokens=j.usage.prompt_tokens,
                                           completion_tokens=j.usage.completion_tokens),
            truncated_input=j.truncated_input, reasoning=j.reasoning, message=j.message, source=j.source,
            route=j.route, judge_pass=j.judge_pass, direct_prob=j.direct_prob,
            outputs=None if j.outputs is None else [
                SampleOut.model_construct(text=o.text, verdict=o.verdict, status=o.status) for o in j.outputs],
            prompt=None if r.prompt is None else [PromptMessage.model_construct(**m) for m in r.prompt],
            verify=None if j.verify is None else VerifyOut.model_construct(status=j.verify.status,
                                                                          message=j.verify.message),
            verify_agrees=j.verify_agrees, notes=list(r.notes), score=j.score,
            components=None if j.components is None else [ComponentOut.of(c) for c in j.components],
            pair=None if j.pair is None else PairOut.model_construct(**j.pair.__dict__))


class ScoreResponse(BaseModel):
    results: list[ScoreResult]
    model: str = Field(description="The judge model that scored the items.")
    judge: str = Field(description="The judge profile used.")


class StreamDone(BaseModel):
    """The last line of a streamed /score answer; a stream that ends without it is incomplete."""

    done: Literal[True] = True
    items: int = Field(description="Items in the request; one result line was sent for each.")
    statuses: dict[str, int] = Field(description="Result lines per status.")
    model: str
    judge: str


# The streamed answer (stream: true): one ScoreResult per line, in completion order, then one StreamDone.
STREAM_RESPONSE = {"content": {"application/x-ndjson": {"schema": {
    "description": "One JSON object per line: a ScoreResult for each item as it is decided (duplicates and cache "
                   "hits first), then a StreamDone line. Without the StreamDone line the stream is incomplete.",
    "anyOf": [{"$ref": "#/components/schemas/ScoreResult"}, {"$ref": "#/components/schemas/StreamDone"}]}}}}
