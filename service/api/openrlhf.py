"""OpenRLHF's remote reward model: ``--remote_rm_url http://HOST:8000/get_reward``.

One number per sample. An item the judge could not score gets ``failure_reward``
(``LIBRA_FAILURE_REWARD``, default 0.0) and is flagged in ``extra_logs``, so a trainer never stalls
on a missing reward. With a rubric judge (``?judge=rubric-criterion``) each query's label is its rubric
(a list of criteria or its JSON text), and ``extra_logs`` adds ``rubric_met``, ``rubric_pitfalls`` and
``rubric_veto_failed`` per sample (``rubric.trainer_logs``), and ``criterion/<id>`` for the ids named in
``log_criteria``. OpenRLHF (3c3be62, ``openrlhf/utils/agent.py``) sends one sample per call and needs every
answer to carry the same keys, which is why criteria are logged only by name. How queries are split into
question and response: ``OpenRLHFRequest.to_items`` (trainer_protocol.py) over ``service/api/chat.py``.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from service.api.dependencies import JSON_BODY
from service.api.errors import ApiError, ErrorCode
from service.api.protocol import ERROR_RESPONSES, RewardModeQuery
from service.api.serving import serving
from service.api.trainer_protocol import OpenRLHFRequest
from service.judge.rubric import RUBRIC_LOG_KEYS, criteria_met, trainer_logs
from service.judge.types import ItemStatus

router = APIRouter()


@router.post("/get_reward", summary="OpenRLHF remote reward model", responses=ERROR_RESPONSES,
             dependencies=[JSON_BODY])
async def get_reward(body: OpenRLHFRequest, request: Request, judge: str | None = Query(None),
                     reward_mode: RewardModeQuery = "verdict",
                     log_criteria: str | None = Query(None, description=(
                         "A rubric judge: comma-separated criterion ids, each logged as the extra_logs key "
                         "criterion/<id> (1.0 where the sample met it; 0.0 where it did not, was undecided or "
                         "is not in the sample's rubric). For data sets whose rubrics share ids."))) -> dict:
    service = serving(request)
    rubric = service.profile(judge).rubric_strategy is not None
    ids = [x.strip() for x in log_criteria.split(",") if x.strip()] if log_criteria is not None else []
    if log_criteria is not None and (not rubric or not ids):
        raise ApiError(ErrorCode.invalid_request, "log_criteria names criterion ids of a rubric judge's rubrics"
                       + ("" if rubric else f"; judge {service.profile(judge).name!r} judges no rubrics"),
                       "log_criteria")
    results = await service.score_items(request, body.to_items(service.special_tokens, rubric), judge, reward_mode,
                                        body.rubrics() if rubric else None)
    rewards = [service.reward_or_failure(r) for r in results]
    # The same keys for every shard, empty ones included: OpenRLHF takes the key set from its first
    # shard and indexes every other shard with it.
    extra = {"judge_failed": [float(r.judgment.reward is None) for r in results],
             "judge_forced": [float(r.judgment.status == ItemStatus.forced) for r in results]}
    if rubric:  # a rubric judge's parts, per sample (OpenRLHF logs each key's mean)
        logs = [trainer_logs(r.judgment.components) for r in results]
        extra |= {key: [x[key] for x in logs] for key in RUBRIC_LOG_KEYS}
        met = [criteria_met(r.judgment.components) for r in results]
        for id in ids:
            extra[f"criterion/{id}"] = [m.get(id) or 0.0 for m in met]
    return {"rewards": rewards, "scores": rewards, "extra_logs": extra}
