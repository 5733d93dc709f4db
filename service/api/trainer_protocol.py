"""The trainer endpoints' request schemas (OpenRLHF's ``/get_reward``, slime's ``/slime/reward``): each turns
itself into the scorer's ``ScoreItem``s; their answers have the trainers' own fixed shapes (openrlhf.py,
slime.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from service.api.chat import question_from_messages, question_from_prompt, split_query, strip_trailing_special
from service.api.protocol import ScalarText
from service.judge.types import ScoreItem


class OpenRLHFRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # trainers add fields over time; ignore what we do not use

    query: list[str] = Field(description="Decoded prompt + response per sample, special tokens included.")
    prompts: list[str] | None = Field(None, description="The templated prompt of each query.")
    labels: list[ScalarText] | None = Field(None, description="Reference answers, for profiles that take one: "
                                            "any JSON scalar (numbers as their text).")

    @field_validator("prompts", "labels")
    @classmethod
    def _one_per_query(cls, values: list | None, info: ValidationInfo) -> list | None:
        query = info.data.get("query")  # declared first; absent when it failed its own validation
        if values is not None and query is not None and len(values) != len(query):
            raise PydanticCustomError("one_per_query", "{got} entries for {n} queries (one per query)",
                                      {"got": len(values), "n": len(query)})
        return values

    def to_items(self, specials: tuple[str, ...] = ()) -> list[ScoreItem]:
        """One item per query, split into question and response (``chat.split_query``); ``specials``: the
        judge tokenizer's special tokens, longest first, stripped from the end of each response too."""
        items = []
        for i, query in enumerate(self.query):
            question, response = split_query(query, self.prompts[i] if self.prompts else None, specials)
            items.append(ScoreItem(question=question, response=response,
                                   reference=self.labels[i] if self.labels else None))
        return items


class SlimeRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    prompt: str | list[dict[str, Any]] = Field(description="Templated prompt string or chat messages.")
    response: str
    label: ScalarText = Field(None, description="Reference answer: any JSON scalar (numbers as their text).")

    def to_item(self) -> ScoreItem:
        question = (question_from_messages(self.prompt) if isinstance(self.prompt, list)
                    else question_from_prompt(self.prompt))
        return ScoreItem(question=question, response=strip_trailing_special(self.response), reference=self.label)
