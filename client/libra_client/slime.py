"""slime's rollout logging for the rewards of ``/slime/reward``:

    --rm-type remote_rm --rm-url http://HOST:8000/slime/reward --reward-key reward \\
    --custom-rollout-log-function-path libra_client.slime.log_rollout_data \\
    --custom-eval-rollout-log-function-path libra_client.slime.log_eval_rollout_data

slime (THUDM/slime at 624b824: ``slime/rollout/rm_hub/__init__.py``, ``slime/utils/types.py``) keeps the
whole dict ``/slime/reward`` answers in ``sample.reward`` and trains on the key ``--reward-key`` names; it
logs none of the other keys by itself. These functions, called by slime's ``log_rollout_data`` and
``log_eval_rollout_data`` (``slime/observability/rollout_metrics.py``) with the rollout's samples, log the
means of ours at slime's rollout (or eval) step:

- ``libra/failed``: the share of samples the judge gave no reward (paid ``LIBRA_FAILURE_REWARD``);
- with a rubric judge, ``libra/rubric_met``, ``libra/rubric_pitfalls``, ``libra/rubric_veto_failed`` and
  ``libra/criterion/<id>``: the share of the samples whose rubric decided that criterion that met it.

They return False, so slime's own logging runs as well. Rewards that are not our dicts are skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

RUBRIC_KEYS = ("rubric_met", "rubric_pitfalls", "rubric_veto_failed")


def reward_metrics(rewards: Iterable[Any]) -> dict[str, float]:
    """The means of the numbers in ``/slime/reward`` dicts (names without slime's prefix)."""
    dicts = [r for r in rewards if isinstance(r, dict) and "failed" in r]
    if not dicts:
        return {}
    out = {"libra/failed": sum(bool(d["failed"]) for d in dicts) / len(dicts)}
    for key in RUBRIC_KEYS:
        values = [float(d[key]) for d in dicts if d.get(key) is not None]
        if values:
            out[f"libra/{key}"] = sum(values) / len(values)
    met: dict[str, list[float]] = {}
    for d in dicts:
        for key, value in (d.get("criteria_met") or {}).items():
            if value is not None:
                met.setdefault(key, []).append(float(value))
    out |= {f"libra/criterion/{key}": sum(v) / len(v) for key, v in sorted(met.items())}
    return out


def log_rollout_data(rollout_id: int, args: Any, samples: list, rollout_extra_metrics: dict | None,
                     rollout_time: float) -> bool:
    """slime's ``--custom-rollout-log-function-path``: logs ours under ``rollout/``, returns False."""
    metrics = reward_metrics(s.reward for s in samples)
    if metrics:
        _log(args, {f"rollout/{k}": v for k, v in metrics.items()}, rollout_id, "rollout/step")
    return False


def log_eval_rollout_data(rollout_id: int, args: Any, data: dict, extra_metrics: dict | None = None) -> bool:
    """slime's ``--custom-eval-rollout-log-function-path``: logs ours under ``eval/<data set>/``, returns
    False."""
    metrics: dict[str, float] = {}
    for name, part in data.items():
        got = reward_metrics(s.reward for s in part.get("samples") or ())
        metrics |= {f"eval/{name}/{k}": v for k, v in got.items()}
    if metrics:
        _log(args, metrics, rollout_id, "eval/step")
    return False


def _log(args: Any, metrics: dict[str, float], rollout_id: int, step_key: str) -> None:
    from slime.observability import logging_utils  # slime's own: wandb and tensorboard as configured
    from slime.observability.metric_utils import compute_rollout_step

    logging_utils.log(args, metrics | {step_key: compute_rollout_step(args, rollout_id)}, step_key=step_key)
