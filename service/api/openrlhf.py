"""OpenRLHF's remote reward model: ``--remote_rm_url http://HOST:8000/get_reward``.

One number per sample. An item the judge could not score gets ``failure_reward``
(``LIBRA_FAILURE_REWARD``, default 0.0) and is flagged in ``extra_logs``, so a trainer never stalls
on a missing reward. How queries are split into question and response: ``OpenRLHFRequest.to_items``
(protocol.py) over ``service/api/chat.py``.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from service.api.dependencies import JSON_BODY
from service.api.protocol import ERROR_RESPONSES, RewardModeQuery
from service.api.serving import serving
from service.api.trainer_protocol import OpenRLHFRequest
from service.judge.types import ItemStatus

router = APIRouter()


@router.post("/get_reward", summary="OpenRLHF remote reward model", responses=ERROR_RESPONSES,
             dependencies=[JSON_BODY])
async def get_reward(body: OpenRLHFRequest, request: Request, judge: str | None = Query(None),
                     reward_mode: RewardModeQuery = "verdict") -> dict:
    service = serving(request)
    results = await service.score_items(request, body.to_items(service.special_tokens), judge, reward_mode)
    rewards = [service.reward_or_failure(r) for r in results]
    # The same keys for every shard, empty ones included: OpenRLHF takes the key set from its first
    # shard and indexes every other shard with it.
    return {"rewards": rewards, "scores": rewards, "extra_logs": {
        "judge_failed": [float(r.judgment.reward is None) for r in results],
        "judge_forced": [float(r.judgment.status == ItemStatus.forced) for r in results],
    }}
