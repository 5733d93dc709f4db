"""``libra-serve bench``: a judge's accuracy on Libra Bench (or any file in its format)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from libra_client import ScoredItem
from libra_eval import report
from libra_eval.accuracy import bench_metrics, prediction
from libra_eval.data import load_bench
from libra_eval.runner import (
    Job,
    judge_info,
    prepare_run_dir,
    request_options,
    run_jobs,
    run_manifest,
    service,
)


def record(job: Job, r: ScoredItem, threshold: float) -> dict[str, Any]:
    raw = r.raw
    pred = prediction(r.reward, threshold)
    return {"key": job.key, **job.meta, "reward": r.reward, "prediction": pred, "right": pred == job.meta["label"],
            "status": r.status, "verdict": r.verdict, "verdict_prob": raw.get("verdict_prob"),
            "votes": raw.get("votes"), "agreement": raw.get("agreement"),
            "cached": raw.get("cached"), "usage": raw.get("usage"), "message": raw.get("message")}


def run(args: Any) -> int:
    out = Path(args.out)
    rows = load_bench(Path(args.data), args.field)
    if args.limit:
        rows = rows[: args.limit]
    options = request_options(args)
    log_path = out / "results.jsonl"
    manifest = run_manifest("bench", args.data, options, field=args.field, threshold=args.threshold)
    prepare_run_dir(out, manifest, [log_path], args.fresh)
    with service(args.url, args.api_key, args.serve, args.serve_args, out) as target:
        model, judge = judge_info(target, args.judge)
        with_reference = judge["reference"] != "unused" or args.mode != "judge"
        jobs = [Job(r.key, r.item(with_reference), {"index": r.index, "subset": r.subset, "model": r.model,
                                                   "label": r.label}) for r in rows]
        started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        records, stats = run_jobs(target, args, jobs, options, log_path, lambda j, r: record(j, r, args.threshold),
                                  "bench")
    finished = [records[j.key] for j in jobs if j.key in records]
    if not finished:
        print(f"no item could be scored: {'; '.join(stats.failures)}")
        return 1
    metrics = bench_metrics(finished, args.threshold)
    metrics["n_missing"] = len(jobs) - len(finished)
    metrics["run"] = {"judge": judge["name"], "model": model, "data": args.data, "field": args.field,
                      "samples": args.samples, "options": options, "started_at": started,
                      "scored_this_run": stats.scored, "resumed_items": stats.done_before,
                      "failed": stats.failed, "wall_s": stats.seconds, "items_per_s": stats.items_per_s}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    pictures = {} if args.no_charts else report.charts(metrics, out)
    (out / "report.md").write_text(report.markdown(metrics, pictures), encoding="utf-8")
    print(f"mean subset accuracy {report.pct(metrics['mean_subset_accuracy'])}, accuracy "
          f"{report.pct(metrics['accuracy'])}, macro F1 {report.pct(metrics['f1'])} on {len(finished)} items; "
          f"report: {out / 'report.md'}")
    if stats.failed:
        print(f"{stats.failed} items got no result (e.g. {stats.failures[0]}); run the same command again to "
              "score them")
        return 1
    return 0


def run_compare(a: str, b: str, out: str | None) -> int:
    text = report.compare(Path(a), Path(b))
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "compare.md").write_text(text, encoding="utf-8")
    print(text)
    return 0
