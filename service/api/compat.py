"""Trainer-compatible endpoints: OpenRLHF's remote reward model and slime's ``--rm-url``.

Both protocols want one number per sample. An item the judge could not score gets
``failure_reward`` (``LIBRA_FAILURE_REWARD``, default 0.0) and is reported as failed
(OpenRLHF: ``extra_logs``; slime: the dict form), so a trainer never stalls on a missing reward.

OpenRLHF sends decoded prompt+response strings *with* special tokens (chat markup, trailing end and
pad tokens) and the templated prompt strings; the response is what follows the prompt, with trailing
special tokens stripped, and the question is the last user turn of the templated prompt.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from service.api.errors import ApiError, ErrorCode
from service.api.routes import run_scoring
from service.judge.types import ItemResult, JudgeOptions, ScoreItem

router = APIRouter()

# Last user turn of common chat templates: (user-turn opener, turn closer).
_USER_TURNS = [
    (r"<\|im_start\|>user\n", r"<\|im_end\|>"),  # ChatML (Qwen, many others)
    (r"<\|start_header_id\|>user<\|end_header_id\|>\n\n", r"<\|eot_id\|>"),  # Llama 3
    (r"<start_of_turn>user\n", r"<end_of_turn>"),  # Gemma
    (r"<｜User｜>", r"<｜Assistant｜>"),  # DeepSeek R1 / V3
    (r"<\|user\|>\n?", r"<\|end\|>|<\|assistant\|>"),  # Phi-3, Zephyr
    (r"\[INST\]", r"\[/INST\]"),  # Llama 2 / Mistral
]
_ASSISTANT_OPENERS = [r"<\|im_start\|>assistant\n", r"<\|start_header_id\|>assistant<\|end_header_id\|>\n\n",
                      r"<start_of_turn>model\n", r"<｜Assistant｜>", r"<\|assistant\|>\n?", r"\[/INST\]"]
_SPECIAL = re.compile(r"<\|[^|<>\s]{1,40}\|>|<｜[^｜]{1,40}｜>|</s>|<s>|<pad>|<eos>|<end_of_turn>|<start_of_turn>")


def question_from_prompt(prompt: str) -> str:
    """The last user turn of a templated prompt; the prompt without markup when no template matches."""
    for opener, closer in _USER_TURNS:
        starts = [m.end() for m in re.finditer(opener, prompt)]
        if starts:
            rest = prompt[starts[-1]:]
            end = re.search(closer, rest)
            return (rest[: end.start()] if end else rest).strip()
    return _SPECIAL.sub("", prompt).strip()


def strip_trailing_special(text: str, extra: tuple[str, ...] = ()) -> str:
    """Drop trailing end/pad tokens (and the whitespace between them) from a decoded response."""
    while True:
        stripped = text.rstrip()
        for tok in extra:
            if tok and stripped.endswith(tok):
                stripped = stripped[: -len(tok)]
                break
        else:
            m = re.search(r"(?:" + _SPECIAL.pattern + r")$", stripped)
            if not m:
                return stripped
            stripped = stripped[: m.start()]
        text = stripped


def split_query(query: str, prompt: str | None, extra_special: tuple[str, ...] = ()) -> tuple[str, str]:
    """(question, response) from an OpenRLHF query and its templated prompt."""
    if prompt is not None and query.startswith(prompt):
        response, templated = query[len(prompt):], prompt
    elif prompt is not None and prompt in query:
        at = query.index(prompt) + len(prompt)
        response, templated = query[at:], query[:at]
    else:  # no usable prompt: split at the last assistant opener
        cut = None
        for opener in _ASSISTANT_OPENERS:
            for m in re.finditer(opener, query):
                cut = m.end() if cut is None or m.end() > cut else cut
        templated, response = (query[:cut], query[cut:]) if cut is not None else (query, "")
    return question_from_prompt(templated), strip_trailing_special(response, extra_special)


def _tokenizer_specials(request: Request) -> tuple[str, ...]:
    tok = request.app.state.engine.tokenizer
    return tuple(sorted(set(getattr(tok, "all_special_tokens", [])), key=len, reverse=True))


async def _score(request: Request, items: list[ScoreItem], judge: str | None) -> list[ItemResult] | None:
    """Score with the profile's defaults through the same path as /score (None: the client left)."""
    state = request.app.state
    state.lifecycle.check_serving()
    name = judge or state.default_judge
    profile = state.profiles.get(name)
    if profile is None:
        raise ApiError(ErrorCode.invalid_request, f"unknown judge {name!r}", "judge")
    if not items:
        return []
    return await run_scoring(request, items, JudgeOptions.from_profile(profile), state.settings.default_timeout_s)


class OpenRLHFRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # trainers add fields over time; ignore what we do not use

    query: list[str] = Field(description="Decoded prompt + response per sample, special tokens included.")
    prompts: list[str] | None = Field(None, description="The templated prompt of each query.")
    labels: list[str | None] | None = Field(None, description="Reference answers, for profiles that take one.")


@router.post("/get_reward", summary="OpenRLHF remote reward model")
async def get_reward(body: OpenRLHFRequest, request: Request, judge: str | None = Query(None)) -> dict:
    n = len(body.query)
    for name, values in (("prompts", body.prompts), ("labels", body.labels)):
        if values is not None and len(values) != n:
            raise ApiError(ErrorCode.invalid_request, f"{name} has {len(values)} entries for {n} queries", name)
    specials = _tokenizer_specials(request)
    items = []
    for i, query in enumerate(body.query):
        question, response = split_query(query, body.prompts[i] if body.prompts else None, specials)
        items.append(ScoreItem(question=question, response=response,
                               reference=body.labels[i] if body.labels else None))
    results = await _score(request, items, judge)
    if results is None:
        return Response(status_code=499)
    failure = request.app.state.settings.failure_reward
    rewards = [r.judgment.reward if r.judgment.reward is not None else failure for r in results]
    return {"rewards": rewards, "scores": rewards, "extra_logs": {
        "judge_failed": [float(r.judgment.reward is None) for r in results],
        "judge_forced": [float(r.judgment.status.value == "forced") for r in results],
    } if results else {}}


class SlimeRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    prompt: str | list[dict[str, Any]] = Field(description="Templated prompt string or chat messages.")
    response: str
    label: str | None = None


def _slime_item(body: SlimeRequest) -> ScoreItem:
    if isinstance(body.prompt, list):
        users = [m.get("content", "") for m in body.prompt if m.get("role") == "user"]
        question = str(users[-1] if users else (body.prompt[-1].get("content", "") if body.prompt else ""))
    else:
        question = question_from_prompt(body.prompt)
    return ScoreItem(question=question, response=strip_trailing_special(body.response), reference=body.label)


@router.post("/slime/reward", summary="slime --rm-url: a dict with the reward under 'reward'")
async def slime_reward(body: SlimeRequest, request: Request, judge: str | None = Query(None),
                       value_only: bool = Query(False, description="Reply with the bare number")) -> Any:
    results = await _score(request, [_slime_item(body)], judge)
    if results is None:
        return Response(status_code=499)
    j = results[0].judgment
    reward = j.reward if j.reward is not None else request.app.state.settings.failure_reward
    if value_only:
        return reward
    return {"reward": reward, "status": j.status.value, "verdict": j.verdict, "failed": j.reward is None,
            "message": j.message}


@router.post("/slime/reward/value", summary="slime --rm-url: the reward as a bare number")
async def slime_reward_value(body: SlimeRequest, request: Request, judge: str | None = Query(None)) -> float:
    return await slime_reward(body, request, judge, value_only=True)
