"""slime's remote reward model: ``--rm-url http://HOST:8000/slime/reward`` (or ``/slime/reward/value``).

One sample per request, as slime's ``remote_rm`` sends it. An item the judge could not score gets
``failure_reward`` (``LIBRA_FAILURE_REWARD``) and ``failed: true`` in the dict form. With a rubric judge the
sample's ``label`` is its rubric (a list of criteria or its JSON text); the dict form adds the numbers of
``rubric.trainer_logs`` and ``criteria_met``: each criterion by its id (else ``criterion_<n>``), 1.0 met (a
pitfall: avoided), 0.0 not, null undecided. slime keeps the dict in ``sample.reward`` and trains on
``--reward-key reward``; ``libra_client.slime`` logs the rest.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from service.api.dependencies import JSON_BODY
from service.api.protocol import ERROR_RESPONSES, RewardModeQuery
from service.api.serving import serving
from service.api.trainer_protocol import SlimeRequest, rubric_of
from service.judge.rubric import criteria_met, trainer_logs

router = APIRouter(prefix="/slime", dependencies=[JSON_BODY])


async def _judge_one(body: SlimeRequest, request: Request, judge: str | None, reward_mode: str):
    service = serving(request)
    rubric = service.profile(judge).rubric_strategy is not None
    [result] = await service.score_items(request, [body.to_item(rubric)], judge, reward_mode,
                                         [rubric_of(body.label)] if rubric else None)
    return result, service.reward_or_failure(result)


@router.post("/reward", summary="slime --rm-url: a dict with the reward under 'reward'", responses=ERROR_RESPONSES)
async def reward(body: SlimeRequest, request: Request, judge: str | None = Query(None),
                 value_only: bool = Query(False, description="Reply with the bare number"),
                 reward_mode: RewardModeQuery = "verdict") -> Any:
    result, value = await _judge_one(body, request, judge, reward_mode)
    if value_only:
        return value
    j = result.judgment
    out = {"reward": value, "status": j.status.value, "verdict": j.verdict, "verdict_prob": j.verdict_prob,
           "failed": j.reward is None, "message": j.message}
    if j.components is not None:  # a rubric judge's parts: the logs' numbers, and each criterion met or not, by id
        out |= trainer_logs(j.components) | {"criteria_met": criteria_met(j.components)}
    return out


@router.post("/reward/value", summary="slime --rm-url: the reward as a bare number", responses=ERROR_RESPONSES)
async def reward_value(body: SlimeRequest, request: Request, judge: str | None = Query(None),
                       reward_mode: RewardModeQuery = "verdict") -> float:
    return (await _judge_one(body, request, judge, reward_mode))[1]
