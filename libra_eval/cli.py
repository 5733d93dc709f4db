"""Argument parsing for ``libra-serve bench``, ``label`` and ``traces``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from libra_client import RequestRejected
from libra_eval.data import BENCH_FIELDS, DataError
from libra_eval.runner import RunError

USAGE = {
    "bench": "Assess a judge on Libra Bench (or any JSONL in its format) through the service.",
    "label": "Label unlabeled responses with a judge: rewards, DPO pairs, best-of-N.",
    "traces": "Rejection-sample a judge's thinking traces on labeled data into SFT JSONL.",
}


def _common(ap: argparse.ArgumentParser, command: str) -> None:
    ap.add_argument("--out", required=command != "bench", help="output directory (resumable: a rerun skips "
                    "finished items)")
    ap.add_argument("--url", default=os.environ.get("LIBRA_URL", "http://127.0.0.1:8000"),
                    help="the service (env LIBRA_URL; default %(default)s)")
    ap.add_argument("--api-key", default=os.environ.get("LIBRA_API_KEY"), help="Bearer key (env LIBRA_API_KEY)")
    ap.add_argument("--serve", action="store_true", help="start libra-serve for this run instead of using --url")
    ap.add_argument("--serve-args", default="", help="arguments for the started server, e.g. "
                    "\"--model /models/judge --judge libra\" (default: the bundled nano judge)")
    ap.add_argument("--judge", help="judge profile (default: the server's)")
    ap.add_argument("--samples", type=int, help="judgments per item (k-sample voting; traces: k samples)")
    ap.add_argument("--temperature", type=float, default=0.7 if command == "traces" else None,
                    help="sampling temperature (default: %s)" % ("0.7" if command == "traces" else "the profile's"))
    ap.add_argument("--max-thinking-tokens", type=int, help="thinking budget per judgment")
    ap.add_argument("--seed", type=int, help="sampling seed")
    ap.add_argument("--mode", default="judge", choices=("judge", "verify", "hybrid", "both"),
                    help="judge (default), or rule-based verification modes that use each item's reference")
    ap.add_argument("--trust-rule", choices=("correct", "conclusive"),
                    help="with --mode hybrid: which math-verify verdicts stand without the judge "
                    "(default: the profile's)")
    ap.add_argument("--timeout-s", type=float, help="deadline per request (server default if unset)")
    ap.add_argument("--threshold", type=float, default=0.5, help="reward at or above which a verdict means correct")
    ap.add_argument("--limit", type=int, default=0, help="only the first N rows")
    ap.add_argument("--chunk-size", type=int, default=64, help="items per request")
    ap.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    ap.add_argument("--fresh", action="store_true", help="discard the output directory's earlier results")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")


def parser(command: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=f"libra-serve {command}", description=USAGE[command])
    if command == "bench":
        ap.add_argument("data", nargs="?", help="JSONL: index, question, response, label, model, reference, subset, "
                        "response_with_cot")
        ap.add_argument("--field", default="response", choices=BENCH_FIELDS, help="the judged text")
        ap.add_argument("--no-charts", action="store_true", help="skip the PNG charts")
        ap.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"),
                        help="print two runs' metrics.json side by side (and write OUT/compare.md with --out)")
    elif command == "label":
        ap.add_argument("data", help="JSONL: {\"question\", \"responses\": [...], optional \"id\", \"reference\"}")
        ap.add_argument("--pairs-per-question", type=int, default=1, help="DPO pairs per question at most")
    else:
        ap.add_argument("data", help="labeled JSONL in Libra Bench format")
        ap.add_argument("--field", default="response", choices=BENCH_FIELDS, help="the judged text")
        ap.add_argument("--keep-forced", action="store_true", help="keep traces whose verdict was forced")
    _common(ap, command)
    return ap


def main(command: str, argv: Sequence[str]) -> None:
    ap = parser(command)
    args = ap.parse_args(list(argv))
    if command == "bench" and args.compare:
        from libra_eval.bench import run_compare

        sys.exit(run_compare(*args.compare, args.out))
    if command == "bench" and (not args.data or not args.out):
        ap.error("DATA and --out are required (or --compare A.json B.json)")
    if args.samples is not None and args.samples < 1:
        ap.error("--samples must be at least 1")
    if command == "label" and args.pairs_per_question < 0:
        ap.error("--pairs-per-question must be at least 0")
    if args.chunk_size < 1 or args.concurrency < 1:
        ap.error("--chunk-size and --concurrency must be at least 1")
    from libra_eval import bench, label, traces

    run = {"bench": bench.run, "label": label.run, "traces": traces.run}[command]
    try:
        code = run(args)
    except (DataError, RunError) as exc:
        print(f"libra-serve {command}: error: {exc}", file=sys.stderr)
        code = 2
    except RequestRejected as exc:
        print(f"libra-serve {command}: the service refused the request: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print(f"\ninterrupted; finished items are saved in {args.out}: run the same command to resume",
              file=sys.stderr)
        code = 130
    sys.exit(code)
