"""NeMo Gym's resource-server contract: ``POST /verify`` (and ``POST /seed_session``), so a NeMo Gym agent uses
this service as the resource server that verifies its rollouts.

Facts from NVIDIA-NeMo/Gym at 07d6b0d07b22fcf530b4c211dae2ee23100428e4 (our own code):

- ``nemo_gym/base_resources_server.py``: a verify request is ``responses_create_params`` (the Responses API
  request: ``input`` a string or a list of messages) and ``response`` (the Responses API object: ``output``, a
  list of items, the assistant's ``message`` items holding ``output_text`` parts), plus the task's own fields;
  the answer echoes the request and adds ``reward`` (``BaseVerifyResponse``), and a multi-reward one adds
  ``reward_components: dict[str, float]`` (``BaseMultiRewardVerifyResponse``, read by GDPO-style trainers,
  each objective normalised on its own), with the same keys for every task.
- ``judge_failsafe``: when the judge fails, the answer is the request with ``reward`` 0.0,
  ``_ng_failure_class: "judge_failed"`` and ``_ng_failure_judge_error``; NeMo Gym routes such rows to its
  failures file, out of the metrics and retried on resume.
- ``responses_api_agents/simple_agent/app.py``: the agent posts ``/seed_session`` first, then ``/verify``
  with the verify request as JSON, carrying the session cookies (a stateless server ignores them).
- The judges (multichallenge) read the last assistant message's text, ``<think>`` blocks stripped.

What this route adds on top: the task fields ``rubric`` (criteria as on ``/score``), ``judge``,
``rubric_strategy``, ``aggregation`` and ``reference``; ``reward_components`` holds each criterion's value by
its id (else ``criterion_<n>``), or ``{"judge": reward}`` for an item without a rubric. Every item the judge
could not give a reward (an undecided criterion, a timeout, an engine error, a refused response) is marked
``judge_failed`` with our status and message, never a silent 0; ``libra`` carries the full result.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from service.api.dependencies import JSON_BODY
from service.api.errors import ApiError, ErrorCode
from service.api.protocol import ERROR_RESPONSES, CriterionIn, ScoreItemIn, ScoreRequest
from service.api.results import ScoreResult
from service.api.serving import serving
from service.judge.rubric import component_key
from service.judge.types import ItemStatus

router = APIRouter()
FAILURE_CLASS = "judge_failed"
REFUSED = (ItemStatus.no_answer, ItemStatus.degenerate)
_THINK = re.compile(r"<think>.*?</think>", re.S)


class NeMoGymVerifyRequest(BaseModel):
    """NeMo Gym's ``BaseVerifyRequest`` and the task fields this route reads; every other field is kept and
    echoed, as NeMo Gym's servers do."""

    model_config = ConfigDict(extra="allow")

    responses_create_params: dict[str, Any] = Field(description="The Responses API request the policy answered: "
                                                    "its input (a string or messages) holds the question.")
    response: dict[str, Any] = Field(description="The Responses API object: the last assistant message's "
                                     "output_text is the response judged (<think> blocks stripped).")
    rubric: list[CriterionIn] | None = Field(None, description="Criteria to judge the response against (as on "
                                             "/score), with a rubric judge.")
    judge: str | None = Field(None, description="The judge profile; the server default if unset.")
    rubric_strategy: Literal["per_criterion", "holistic"] | None = None
    aggregation: Literal["weighted", "mean", "min", "all", "any"] | None = None
    reference: str | None = Field(None, description="A reference answer, for judges that use one.")


def question_of(params: dict[str, Any]) -> str:
    """The question: ``input`` as a string, else its last user message's text."""
    given = params.get("input")
    if isinstance(given, str):
        return given
    for message in reversed(given if isinstance(given, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text(message.get("content"))
    raise ApiError(ErrorCode.invalid_request, "responses_create_params.input has no user message: nothing to "
                   "judge the response against", "responses_create_params.input")


def response_of(response: dict[str, Any]) -> str:
    """The last assistant message's text, its thinking stripped."""
    output = response.get("output")
    messages = [o for o in (output if isinstance(output, list) else []) if isinstance(o, dict)
                and o.get("type") == "message" and o.get("role", "assistant") == "assistant"]
    if not messages:
        raise ApiError(ErrorCode.invalid_request, "response.output has no assistant message to judge",
                       "response.output")
    return _THINK.sub("", _text(messages[-1].get("content"))).strip()


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    return "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict)
                   and p.get("type") in ("output_text", "input_text", "text"))


@router.post("/seed_session", summary="NeMo Gym: start a session (this resource server keeps no state)",
             responses={401: ERROR_RESPONSES[401]})
async def seed_session() -> dict:
    return {}


@router.post("/verify", summary="NeMo Gym resource server: the rollout's reward (and reward_components)",
             responses=ERROR_RESPONSES, dependencies=[JSON_BODY])
async def verify(body: NeMoGymVerifyRequest, request: Request) -> Response:
    service = serving(request)
    item = ScoreItemIn(question=question_of(body.responses_create_params), response=response_of(body.response),
                       reference=body.reference, rubric=body.rubric)
    score = ScoreRequest(items=[item], judge=body.judge, rubric_strategy=body.rubric_strategy,
                         aggregation=body.aggregation)
    answer = await service.score_request(score, request)
    [result] = answer.results
    out = body.model_dump(mode="json") | verify_fields(result)
    return Response(_json(out), media_type="application/json")


def verify_fields(r: ScoreResult) -> dict[str, Any]:
    """NeMo Gym's fields for one result: reward, reward_components, and the failure marks where the judge gave no
    reward. A response the reward policy refused (no final answer, a repetition loop) earns 0 and is not a
    failure: junk is scored, not retried."""
    per_criterion = bool(r.components) and r.components[0].status is not None
    if per_criterion:
        components = {component_key(c.id, c.index): c.reward if c.reward is not None else 0.0 for c in r.components}
    else:
        components = {"holistic" if r.components else "judge": r.reward if r.reward is not None else 0.0}
    fields: dict[str, Any] = {"reward": r.reward if r.reward is not None else 0.0, "reward_components": components,
                              "libra": r.model_dump(mode="json", exclude_none=True)}
    if r.reward is None and r.status not in REFUSED:
        fields |= {"_ng_failure_class": FAILURE_CLASS,
                   "_ng_failure_judge_error": f"{r.status.value}: {r.message or 'no reward'}"}
    return fields


def _json(data: dict) -> bytes:
    import json

    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
