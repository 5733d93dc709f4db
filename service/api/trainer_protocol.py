"""The trainer endpoints' request schemas (OpenRLHF's ``/get_reward``, slime's ``/slime/reward``): each turns
itself into the scorer's ``ScoreItem``s; their answers have the trainers' own fixed shapes (openrlhf.py,
slime.py)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from service.api.chat import question_from_messages, question_from_prompt, split_query, strip_trailing_special
from service.api.errors import ApiError, ErrorCode
from service.api.protocol import CriterionIn, ScalarText
from service.judge.rubric import Criterion
from service.judge.types import ScoreItem

# A trainer's label: the reference answer (any JSON scalar), or for a rubric judge the sample's rubric: a list
# of criteria as on /score (RaR's rows too), or that list's JSON text (data sets often store it as a string).
Label = Annotated[ScalarText | list[dict[str, Any]], Field(
    description="The reference answer (any JSON scalar, numbers as their text); for a rubric judge, the sample's "
    "rubric: a list of criteria as on /score, or its JSON text (docs/rubrics.md).")]
_CRITERIA = TypeAdapter(list[CriterionIn])


def rubric_of(label: Any) -> list[Criterion] | str:
    """A rubric judge's reading of a trainer's label: its criteria, or why it is none (that item's message;
    the rest of the batch is judged)."""
    value = label
    if isinstance(label, str):
        try:
            value = json.loads(label)
        except ValueError:
            return ("the label is not a rubric: a rubric judge reads each sample's label as its rubric, a JSON list "
                    "of criteria (docs/rubrics.md)")
    if value is None:
        return "the sample has no label, and a rubric judge reads the sample's rubric from its label"
    try:
        return [c.to_criterion() for c in _CRITERIA.validate_python(value)]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        return f"the label is not a rubric: {'criterion ' + where + ': ' if where else ''}{first['msg']}"


def _reference(label: Any, param: str) -> str | None:
    if isinstance(label, list):
        raise ApiError(ErrorCode.invalid_request, "a list label is a rubric, and this judge does not judge rubrics: "
                       "pick a rubric judge (GET /judges: rubric) or send the reference answer", param)
    return label


class OpenRLHFRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # trainers add fields over time; ignore what we do not use

    query: list[str] = Field(description="Decoded prompt + response per sample, special tokens included.")
    prompts: list[str] | None = Field(None, description="The templated prompt of each query.")
    labels: list[Label] | None = Field(None, description="Reference answers, for profiles that take one: any JSON "
                                       "scalar (numbers as their text); for a rubric judge, each query's rubric.")

    @field_validator("prompts", "labels")
    @classmethod
    def _one_per_query(cls, values: list | None, info: ValidationInfo) -> list | None:
        query = info.data.get("query")  # declared first; absent when it failed its own validation
        if values is not None and query is not None and len(values) != len(query):
            raise PydanticCustomError("one_per_query", "{got} entries for {n} queries (one per query)",
                                      {"got": len(values), "n": len(query)})
        return values

    def to_items(self, specials: tuple[str, ...] = (), rubric_judge: bool = False) -> list[ScoreItem]:
        """One item per query, split into question and response (``chat.split_query``); ``specials``: the
        judge tokenizer's special tokens, longest first, stripped from the end of each response too. For a
        rubric judge the labels are rubrics (``rubrics``), not references."""
        items = []
        for i, query in enumerate(self.query):
            question, response = split_query(query, self.prompts[i] if self.prompts else None, specials)
            reference = None if rubric_judge or not self.labels else _reference(self.labels[i], f"labels.{i}")
            items.append(ScoreItem(question=question, response=response, reference=reference))
        return items

    def rubrics(self) -> list[list[Criterion] | str]:
        return [rubric_of(self.labels[i] if self.labels else None) for i in range(len(self.query))]


class SlimeRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    prompt: str | list[dict[str, Any]] = Field(description="Templated prompt string or chat messages.")
    response: str
    label: Label = None

    def to_item(self, rubric_judge: bool = False) -> ScoreItem:
        question = (question_from_messages(self.prompt) if isinstance(self.prompt, list)
                    else question_from_prompt(self.prompt))
        return ScoreItem(question=question, response=strip_trailing_special(self.response),
                         reference=None if rubric_judge else _reference(self.label, "label"))
