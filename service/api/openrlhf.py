"""OpenRLHF's remote reward model: ``--remote_rm_url http://HOST:8000/get_reward``.

One number per sample. An item the judge could not score gets ``failure_reward``
(``LIBRA_FAILURE_REWARD``, default 0.0) and is flagged in ``extra_logs``, so a trainer never stalls
on a missing reward. How queries are split into question and response: ``service/api/chat.py``.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from service.api.chat import split_query
from service.api.dependencies import JSON_BODY
from service.api.errors import ApiError, ErrorCode
from service.api.protocol import ERROR_RESPONSES, OpenRLHFRequest, RewardModeQuery
from service.api.serving import serving, with_cancellation
from service.judge.types import ItemStatus, ScoreItem

router = APIRouter()


@router.post("/get_reward", summary="OpenRLHF remote reward model", responses=ERROR_RESPONSES,
             dependencies=[JSON_BODY])
@with_cancellation
async def get_reward(body: OpenRLHFRequest, request: Request, judge: str | None = Query(None),
                     reward_mode: RewardModeQuery = "verdict") -> dict:
    service = serving(request)
    n = len(body.query)
    for name, values in (("prompts", body.prompts), ("labels", body.labels)):
        if values is not None and len(values) != n:
            raise ApiError(ErrorCode.invalid_request, f"{name} has {len(values)} entries for {n} queries", name)
    opts, timeout_s = service.default_options(judge, reward_mode, n)
    specials = tuple(sorted(set(getattr(service.engine.tokenizer, "all_special_tokens", [])), key=len, reverse=True))
    items = []
    for i, query in enumerate(body.query):
        question, response = split_query(query, body.prompts[i] if body.prompts else None, specials)
        items.append(ScoreItem(question=question, response=response,
                               reference=body.labels[i] if body.labels else None))
    results = await service.score(request, items, opts, timeout_s)
    rewards = [service.reward_or_failure(r) for r in results]
    # The same keys for every shard, empty ones included: OpenRLHF takes the key set from its first
    # shard and indexes every other shard with it.
    return {"rewards": rewards, "scores": rewards, "extra_logs": {
        "judge_failed": [float(r.judgment.reward is None) for r in results],
        "judge_forced": [float(r.judgment.status == ItemStatus.forced) for r in results],
    }}
