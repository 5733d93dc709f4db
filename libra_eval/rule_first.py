"""What ``mode: hybrid``'s rule-first cascade buys and costs, against a live server.

    python -m libra_eval.rule_first                                        # make rule-first (~5 min)
    python -m libra_eval.rule_first --url http://127.0.0.1:8000            # a running server
    python -m libra_eval.rule_first --url URL --cited docs/research/rule-false-negatives.jsonl --nano 0

Two sets, each scored three ways (``mode: verify``; ``hybrid`` with ``trust_rule: conclusive``, the old
behaviour; ``hybrid`` with ``trust_rule: correct``, the default):

- **cited**: answers no one here wrote in their forms (docs/research/rule-false-negatives.md says where
  each comes from), correct and wrong, with a reference each. The rule's verdicts and the routes are
  facts of math-verify and the cascade; the judge's verdicts are only as good as the server's judge
  (the bundled nano judge knows only small sums, so on this set read the routes, not the accuracy).
- **nano**: the nano world's held-out items (a real judge for this world, on the real engine), half of
  them with the reference in digits and half with it in words, as text-answer data sets store it; here
  the accuracy of each way is the judge's and the rule's own.

Per set and way: how many correct answers end with no reward from the rule alone (the cascade's false
negatives: ``rule_incorrect``), wrong answers the rule accepts, judge calls per 1,000 items, and the
accuracy of the final reward (reward >= 0.5 against the truth). ``--out`` writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path

from libra_client import LibraClient
from libra_eval.runner import service

ROOT = Path(__file__).resolve().parents[1]
CITED = ROOT / "docs" / "research" / "rule-false-negatives.jsonl"
NANO_HELDOUT = ROOT / "nano" / "heldout.jsonl"
WAYS = (("verify", {"mode": "verify"}),
        ("hybrid, trust conclusive", {"mode": "hybrid", "trust_rule": "conclusive"}),
        ("hybrid, trust correct", {"mode": "hybrid", "trust_rule": "correct"}))
POLICY_OFF = {"answer": "none"}  # the sets hold answers in words and forms no answer check is asked about

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def words(n: int) -> str:
    """``n`` (0-9999) in English words, as a text-answer data set writes it: ``four hundred five``."""
    if n < 0:
        return "minus " + words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else "-" + _ONES[n % 10])
    if n < 1000:
        return _ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + words(n % 100))
    return words(n // 1000) + " thousand" + ("" if n % 1000 == 0 else " " + words(n % 1000))


def cited_items(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [{"id": r["id"], "question": r["question"], "response": r["response"], "reference": r["reference"],
             "truth": r["truth"] == "correct", "form": r.get("form", "")} for r in rows]


def nano_items(n: int, path: Path = NANO_HELDOUT) -> list[dict]:
    """The first ``n`` nano held-out items (data: this package never imports ``nano``), each with its true
    answer as the reference, in digits for half of them and in words for the other half."""
    items = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()[:n]):
        row = json.loads(line)
        a, op, b = re.search(r"(\d+) ([+-]) (\d+)", row["question"]).groups()
        truth = int(a) + int(b) if op == "+" else int(a) - int(b)
        in_words = i // 2 % 2 == 1  # (pairs: the held-out set alternates right and wrong answers)
        items.append({"id": row["id"], "question": row["question"], "response": row["response"],
                      "reference": words(truth) if in_words else str(truth), "truth": bool(row["label"]),
                      "form": "words" if in_words else "digits"})
    return items


def measure(client: LibraClient, items: list[dict], **extra) -> dict:
    """Every way over ``items``: counts by truth, route and rule verdict, and the final rewards' accuracy."""
    sent = [{k: it[k] for k in ("id", "question", "response", "reference")} for it in items]
    out: dict = {"items": len(items), "correct_items": sum(it["truth"] for it in items)}
    for name, options in WAYS:
        results = client.score(sent, policy=POLICY_OFF, **options, **extra)
        routes: Counter = Counter()
        rule: Counter = Counter()
        right = judged = fn = wrong_paid = no_reward = 0
        for it, r in zip(items, results, strict=True):
            raw = r.raw
            truth = "correct" if it["truth"] else "wrong"
            route = raw.get("route")
            routes[route or raw.get("source", "?")] += 1
            rule[(truth, (raw.get("verify") or {}).get("status"))] += 1
            judged += raw.get("source") == "judge"
            if r.reward is None:
                no_reward += 1
                continue
            paid = r.reward >= 0.5
            right += paid == it["truth"]
            if it["truth"] and not paid and raw.get("source") == "verify":
                fn += 1  # a correct answer the rule alone left without a reward
            if not it["truth"] and paid and raw.get("source") == "verify":
                wrong_paid += 1
        out[name] = {"accuracy": right / len(items), "judge_calls_per_1000": 1000 * judged / len(items),
                     "rule_false_negatives": fn, "rule_accepted_wrong": wrong_paid, "no_reward": no_reward,
                     "routes": dict(routes), "rule": {f"{t}:{s}": n for (t, s), n in sorted(rule.items())}}
    return out


def report(name: str, figures: dict) -> None:
    n, pos = figures["items"], figures["correct_items"]
    print(f"\n{name}: {n} items ({pos} correct, {n - pos} wrong)")
    rule = figures["verify"]["rule"]
    print("  math-verify on correct answers: " + ", ".join(
        f"{s} {rule.get(f'correct:{s}', 0)}" for s in ("correct", "incorrect", "inconclusive")))
    print("  math-verify on wrong answers:   " + ", ".join(
        f"{s} {rule.get(f'wrong:{s}', 0)}" for s in ("correct", "incorrect", "inconclusive")))
    print(f"  {'way':<26} {'accuracy':>8} {'rule FN':>8} {'wrong paid by rule':>19} {'judge calls/1000':>17}")
    for way, _ in WAYS:
        f = figures[way]
        print(f"  {way:<26} {f['accuracy']:>8.1%} {f['rule_false_negatives']:>8} {f['rule_accepted_wrong']:>19} "
              f"{f['judge_calls_per_1000']:>17.0f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running libra-serve with rule-based verification on (default: start one "
                    "on the bundled nano judge)")
    ap.add_argument("--judge", help="judge profile (default: the server's)")
    ap.add_argument("--cited", type=Path, default=CITED, help="the cited set (JSONL); '' skips it")
    ap.add_argument("--nano", type=int, default=1000, help="nano held-out items (0 skips them)")
    ap.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = ap.parse_args(argv)
    extra = {"judge": args.judge} if args.judge else {}
    figures = {}
    with tempfile.TemporaryDirectory() as log_dir, \
            service(args.url or "", None, args.url is None, "", Path(log_dir)) as target, \
            LibraClient(target.url) as client:
        if str(args.cited) not in ("", "."):
            figures["cited"] = measure(client, cited_items(args.cited), **extra)
            report(f"cited ({args.cited.name})", figures["cited"])
        if args.nano:
            figures["nano"] = measure(client, nano_items(args.nano), **extra)
            report("nano held-out (half the references in words)", figures["nano"])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
