"""Libra Bench metrics from per-item results: pure functions, table-tested.

The headline metric is the dataset card's: accuracy within each subset, then the mean over subsets
(so a large subset does not outweigh a small one). An item is judged right when the judge's prediction
equals its label; the prediction is 1 when the reward is at least ``threshold``, 0 below it, and
*none* when the judge gave no verdict (unparsed, truncated, timeout, error, ...). An item without a
prediction counts as wrong everywhere: in accuracy, and as a miss of its true class in recall.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any


def prediction(reward: float | None, threshold: float = 0.5) -> int | None:
    if reward is None:
        return None
    return int(reward >= threshold)


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def roc_auc(scores: list[float], labels: list[int]) -> float | None:
    """Area under the ROC curve: the chance a correct item outscores an incorrect one (ties count half)."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y == 1]
    neg = [s for s, y in zip(scores, labels, strict=True) if y == 0]
    if not pos or not neg:
        return None
    ranked = sorted((s, y) for s, y in zip(scores, labels, strict=True))
    rank_sum, i = 0.0, 0
    while i < len(ranked):  # average ranks over ties
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        mean_rank = (i + 1 + j) / 2
        rank_sum += mean_rank * sum(y for _, y in ranked[i:j])
        i = j
    return (rank_sum - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


def calibration(scores: list[float], labels: list[int], bins: int = 10) -> dict[str, Any]:
    """Expected calibration error over equal-width bins of the predicted probability, with each bin's
    mean prediction, observed rate and count (the reliability diagram's points)."""
    table = []
    ece = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = [(s, y) for s, y in zip(scores, labels, strict=True) if lo <= s < hi or (b == bins - 1 and s == 1.0)]
        if not members:
            continue
        conf = sum(s for s, _ in members) / len(members)
        rate = sum(y for _, y in members) / len(members)
        ece += len(members) / len(scores) * abs(conf - rate)
        table.append({"bin": [lo, hi], "mean_prob": conf, "observed": rate, "n": len(members)})
    return {"ece": ece, "bins": table}


def bench_metrics(records: Iterable[Mapping[str, Any]], threshold: float = 0.5) -> dict[str, Any]:
    """Every figure of the report from records with ``label``, ``reward``, ``status``, ``subset``,
    ``model`` and ``usage`` (prompt_tokens, completion_tokens)."""
    records = list(records)
    if not records:
        raise ValueError("no results to compute metrics from")
    by_subset: dict[str, list[bool]] = defaultdict(list)
    by_model: dict[str, list[bool]] = defaultdict(list)
    confusion = {truth: {"judged_correct": 0, "judged_incorrect": 0, "no_verdict": 0}
                 for truth in ("correct", "incorrect")}
    statuses: Counter[str] = Counter()
    prompt_tokens = completion_tokens = 0
    for r in records:
        pred = prediction(r.get("reward"), threshold)
        right = pred == r["label"]
        by_subset[r["subset"]].append(right)
        by_model[r["model"]].append(right)
        truth = "correct" if r["label"] == 1 else "incorrect"
        column = "no_verdict" if pred is None else ("judged_correct" if pred == 1 else "judged_incorrect")
        confusion[truth][column] += 1
        statuses[r["status"]] += 1
        usage = r.get("usage") or {}
        prompt_tokens += usage.get("prompt_tokens", 0)
        completion_tokens += usage.get("completion_tokens", 0)

    n = len(records)
    subset_accuracy = {s: sum(v) / len(v) for s, v in sorted(by_subset.items())}
    per_class = {}
    for cls, col, other in (("correct", "judged_correct", "incorrect"), ("incorrect", "judged_incorrect", "correct")):
        tp = confusion[cls][col]
        predicted = tp + confusion[other][col]
        actual = sum(confusion[cls].values())
        precision, recall = _ratio(tp, predicted), _ratio(tp, actual)
        per_class[cls] = {"precision": precision, "recall": recall, "support": actual,
                          "f1": _ratio(2 * precision * recall, precision + recall)}
    return {
        "n_items": n,
        "mean_subset_accuracy": _mean(subset_accuracy.values()),
        "accuracy": sum(sum(v) for v in by_subset.values()) / n,
        "subset_accuracy": subset_accuracy,
        "subset_items": {s: len(v) for s, v in sorted(by_subset.items())},
        "model_accuracy": {m: sum(v) / len(v) for m, v in sorted(by_model.items())},
        "model_items": {m: len(v) for m, v in sorted(by_model.items())},
        "precision": _mean(c["precision"] for c in per_class.values()),
        "recall": _mean(c["recall"] for c in per_class.values()),
        "f1": _mean(c["f1"] for c in per_class.values()),
        "per_class": per_class,
        "confusion": confusion,
        "statuses": dict(sorted(statuses.items())),
        "no_verdict_rate": (confusion["correct"]["no_verdict"] + confusion["incorrect"]["no_verdict"]) / n,
        "unparsed_rate": statuses["unparsed"] / n,
        "forced_rate": statuses["forced"] / n,
        "timeout_rate": statuses["timeout"] / n,
        "prompt_tokens_per_item": prompt_tokens / n,
        "completion_tokens_per_item": completion_tokens / n,
        "threshold": threshold,
        **_probability_metrics(records),
    }


def _probability_metrics(records: list[Mapping[str, Any]]) -> dict[str, Any]:
    """ROC AUC and calibration of verdict_prob, when the results carry it."""
    scored = [(r["verdict_prob"], r["label"]) for r in records if r.get("verdict_prob") is not None]
    if not scored:
        return {}
    scores, labels = [s for s, _ in scored], [y for _, y in scored]
    return {"prob_items": len(scored), "roc_auc": roc_auc(scores, labels), "calibration": calibration(scores, labels)}
