"""``libra-serve label``: the paper's downstream use. A judge's verdicts on unlabeled responses become
per-response rewards, DPO preference pairs and best-of-N picks.

- ``rewards.jsonl``: one line per response (the resumable log).
- ``dpo_pairs.jsonl``: ``{"prompt", "chosen", "rejected"}``, the shape TRL's ``DPOTrainer`` reads. Chosen
  responses were judged correct, rejected ones incorrect; up to ``--pairs-per-question`` pairs per
  question, the most confident first. Questions whose responses all got the same verdict give none.
- ``best_of_n.jsonl``: per question, the response with the highest reward (ties: higher agreement,
  then the shorter response).
- ``summary.json``: the counts, including questions without pairs and why.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from libra_client import ScoredItem
from libra_eval.data import UnlabeledRow, load_unlabeled
from libra_eval.runner import (
    Job,
    judge_info,
    prepare_run_dir,
    request_options,
    run_jobs,
    run_manifest,
    service,
)


def record(job: Job, r: ScoredItem) -> dict[str, Any]:
    return {"key": job.key, **job.meta, "reward": r.reward, "status": r.status, "verdict": r.verdict,
            "agreement": r.raw.get("agreement"), "votes": r.raw.get("votes"), "message": r.raw.get("message")}


def pairs_for(responses: list[tuple[str, dict]], threshold: float, limit: int) -> list[tuple[str, str]]:
    """Up to ``limit`` distinct (chosen, rejected) pairs: chosen judged correct, rejected judged incorrect,
    ranked by confidence (reward, then agreement) so the first pair is the clearest."""
    def confidence(rec: dict) -> float:
        return rec.get("agreement") or 0.0

    chosen = sorted((x for x in responses if x[1]["reward"] is not None and x[1]["reward"] >= threshold),
                    key=lambda x: (-x[1]["reward"], -confidence(x[1]), len(x[0])))
    rejected = sorted((x for x in responses if x[1]["reward"] is not None and x[1]["reward"] < threshold),
                      key=lambda x: (x[1]["reward"], -confidence(x[1]), len(x[0])))
    ranked = sorted(itertools.product(range(len(chosen)), range(len(rejected))), key=lambda ij: (sum(ij), ij[0]))
    return [(chosen[i][0], rejected[j][0]) for i, j in ranked[:limit]]


def best_of_n(responses: list[tuple[int, str, dict]]) -> tuple[int, str, dict] | None:
    scored = [x for x in responses if x[2]["reward"] is not None]
    if not scored:
        return None
    return min(scored, key=lambda x: (-x[2]["reward"], -(x[2].get("agreement") or 0.0), len(x[1]), x[0]))


def write_outputs(rows: list[UnlabeledRow], records: dict[str, dict], out: Path, threshold: float,
                  pairs_per_question: int) -> dict[str, Any]:
    counts = {"questions": len(rows), "responses": sum(len(r.responses) for r in rows), "responses_scored": 0,
              "pairs": 0, "questions_with_pairs": 0, "questions_all_correct": 0, "questions_all_incorrect": 0,
              "questions_without_two_verdicts": 0, "best_of_n": 0, "questions_without_verdict": 0}
    with open(out / "dpo_pairs.jsonl", "w", encoding="utf-8") as dpo, \
            open(out / "best_of_n.jsonl", "w", encoding="utf-8") as best:
        for row in rows:
            judged = [(j, text, records[f"{row.key}/{j}"]) for j, text in enumerate(row.responses)
                      if f"{row.key}/{j}" in records]
            counts["responses_scored"] += len(judged)
            verdicts = [rec["reward"] >= threshold for _, _, rec in judged if rec["reward"] is not None]
            pairs = pairs_for([(text, rec) for _, text, rec in judged], threshold, pairs_per_question)
            if pairs:
                counts["questions_with_pairs"] += 1
            elif len(verdicts) < 2:
                counts["questions_without_two_verdicts"] += 1
            elif all(verdicts):
                counts["questions_all_correct"] += 1
            else:
                counts["questions_all_incorrect"] += 1
            for chosen, rejected in pairs:
                dpo.write(json.dumps({"prompt": row.question, "chosen": chosen, "rejected": rejected},
                                     ensure_ascii=False) + "\n")
            counts["pairs"] += len(pairs)
            top = best_of_n(judged)
            if top is None:
                counts["questions_without_verdict"] += 1
                continue
            j, text, rec = top
            best.write(json.dumps({"id": row.key, "question": row.question, "response": text, "response_index": j,
                                   "reward": rec["reward"], "agreement": rec.get("agreement"),
                                   "candidates": len(row.responses)}, ensure_ascii=False) + "\n")
            counts["best_of_n"] += 1
    return counts


def run(args: Any) -> int:
    out = Path(args.out)
    rows = load_unlabeled(Path(args.data))
    if args.limit:
        rows = rows[: args.limit]
    options = request_options(args)
    log_path = out / "rewards.jsonl"
    prepare_run_dir(out, run_manifest("label", args.data, options), [log_path], args.fresh)
    with service(args.url, args.api_key, args.serve, args.serve_args, out) as target:
        _, judge = judge_info(target, args.judge)
        with_reference = judge["reference"] != "unused" or args.mode != "judge"
        jobs = []
        for row in rows:
            for j, text in enumerate(row.responses):
                item = {"id": f"{row.key}/{j}", "question": row.question, "response": text}
                if with_reference and row.reference:
                    item["reference"] = row.reference
                jobs.append(Job(f"{row.key}/{j}", item, {"id": row.key, "response_index": j}))
        records, stats = run_jobs(target, args, jobs, options, log_path, record, "label")
    counts = write_outputs(rows, records, out, args.threshold, args.pairs_per_question)
    counts.update(scored_this_run=stats.scored, resumed_items=stats.done_before, failed=stats.failed,
                  wall_s=round(stats.seconds, 2), items_per_s=stats.items_per_s)
    (out / "summary.json").write_text(json.dumps(counts, indent=2) + "\n", encoding="utf-8")
    print(f"{counts['responses_scored']}/{counts['responses']} responses scored; {counts['pairs']} DPO pairs from "
          f"{counts['questions_with_pairs']} questions ({counts['questions_all_correct']} all judged correct, "
          f"{counts['questions_all_incorrect']} all incorrect: no pairs); best-of-N for {counts['best_of_n']}; "
          f"outputs in {out}")
    if stats.failed:
        print(f"{stats.failed} responses got no result (e.g. {stats.failures[0]}); run the same command again")
        return 1
    return 0
