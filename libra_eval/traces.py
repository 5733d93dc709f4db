"""``libra-serve traces``: the data side of the paper's learning-to-think recipe.

On labeled data (Libra Bench format), sample ``k`` judgments per item with the judge's reasoning,
keep the samples whose verdict matches the label (rejection sampling), and write the distinct ones as chat-format
SFT data: ``sft.jsonl`` lines ``{"messages": [the judge's prompt as it saw it..., {"role": "assistant",
"content": thinking and verdict}]}``. ``keep_rates.jsonl`` has each item's kept/sampled counts and
``summary.json`` the totals. Forced verdicts (the thinking was cut at the budget and the verdict
constrained by the service) are not the judge's own reasoning and are dropped unless ``--keep-forced``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from libra_client import ScoredItem
from libra_eval.data import load_bench
from libra_eval.runner import (
    Job,
    RunError,
    judge_info,
    prepare_run_dir,
    request_options,
    run_jobs,
    run_manifest,
    service,
)


def kept_samples(outputs: list[dict], label: int, labels: dict[str, float], threshold: float,
                 keep_forced: bool) -> list[str]:
    """The sampled outputs whose own verdict agrees with the label."""
    kept = []
    for o in outputs:
        reward = labels.get(o["verdict"]) if o["verdict"] is not None else None
        if reward is None or (o["status"] == "forced" and not keep_forced):
            continue
        if int(reward >= threshold) == label:
            kept.append(o["text"])
    return kept


def run(args: Any) -> int:
    if args.samples is None or args.samples < 1:
        raise RunError("--samples K is required (judgments sampled per item)")
    if args.samples > 1 and args.temperature == 0:
        raise RunError("--temperature 0 makes every sample the same; use a sampling temperature for k > 1")
    out = Path(args.out)
    rows = load_bench(Path(args.data), args.field)
    if args.limit:
        rows = rows[: args.limit]
    options = request_options(args, return_reasoning=True, return_prompt=True, cache=False)
    log_path = out / "traces_log.jsonl"
    manifest = run_manifest("traces", args.data, options, field=args.field, keep_forced=args.keep_forced,
                            threshold=args.threshold)
    prepare_run_dir(out, manifest, [log_path], args.fresh)
    with service(args.url, args.api_key, args.serve, args.serve_args, out) as target:
        model, judge = judge_info(target, args.judge)
        labels = judge["labels"]
        with_reference = judge["reference"] != "unused"
        jobs = [Job(r.key, r.item(with_reference), {"index": r.index, "subset": r.subset, "label": r.label})
                for r in rows]

        def record(job: Job, r: ScoredItem) -> dict[str, Any]:
            outputs = r.raw.get("outputs") or []
            kept = kept_samples(outputs, job.meta["label"], labels, args.threshold, args.keep_forced)
            forced = sum(o["status"] == "forced" for o in outputs)
            return {"key": job.key, **job.meta, "status": r.status, "sampled": len(outputs), "kept": kept,
                    "verdicts": [o["verdict"] for o in outputs], "forced": forced, "prompt": r.raw.get("prompt")}
        records, stats = run_jobs(target, args, jobs, options, log_path, record, "traces")
    totals = {"items": len(jobs), "items_scored": 0, "samples": 0, "kept": 0, "written": 0, "forced_dropped": 0,
              "items_with_a_trace": 0}
    by_subset: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    with open(out / "sft.jsonl", "w", encoding="utf-8") as sft, \
            open(out / "keep_rates.jsonl", "w", encoding="utf-8") as rates:
        for job in jobs:
            rec = records.get(job.key)
            if rec is None:
                continue
            totals["items_scored"] += 1
            totals["samples"] += rec["sampled"]
            totals["kept"] += len(rec["kept"])
            totals["items_with_a_trace"] += bool(rec["kept"])
            if not args.keep_forced:
                totals["forced_dropped"] += rec["forced"]
            by_subset[rec["subset"]][0] += len(rec["kept"])
            by_subset[rec["subset"]][1] += rec["sampled"]
            unique = list(dict.fromkeys(rec["kept"]))  # a judge that is sure repeats itself word for word
            totals["written"] += len(unique)
            for text in unique:
                messages = list(rec["prompt"] or []) + [{"role": "assistant", "content": text}]
                sft.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
            rates.write(json.dumps({"index": rec["index"], "subset": rec["subset"], "label": rec["label"],
                                    "sampled": rec["sampled"], "kept": len(rec["kept"]),
                                    "keep_rate": len(rec["kept"]) / rec["sampled"] if rec["sampled"] else 0.0})
                        + "\n")
    totals["keep_rate"] = totals["kept"] / totals["samples"] if totals["samples"] else 0.0
    totals["subset_keep_rate"] = {s: k / n if n else 0.0 for s, (k, n) in sorted(by_subset.items())}
    totals.update(judge=judge["name"], model=model, scored_this_run=stats.scored, resumed_items=stats.done_before,
                  failed=stats.failed, wall_s=round(stats.seconds, 2), items_per_s=stats.items_per_s)
    (out / "summary.json").write_text(json.dumps(totals, indent=2) + "\n", encoding="utf-8")
    print(f"kept {totals['kept']} of {totals['samples']} sampled traces ({100 * totals['keep_rate']:.1f}%) on "
          f"{totals['items_scored']} items; {totals['items_with_a_trace']} items have at least one; "
          f"{totals['written']} distinct traces written to {out / 'sft.jsonl'}")
    if stats.failed:
        print(f"{stats.failed} items got no result (e.g. {stats.failures[0]}); run the same command again")
        return 1
    return 0
