"""Which criteria the nano judge can decide as the ``nano-rubric`` grader (docs/rubrics.md, "The nano world").

    python -m nano.rubric_probe --url http://127.0.0.1:8000 [--n 150]

For ``n`` held-out items, each response is judged against criteria that are sums: the sum asked, the same
operands with the other operation, the first operand ten higher; and, for a response that gives only "The
answer is N.", the sum asked. Prints, per family, how many verdicts were right (the truth: whether the
response's final answer equals the criterion's sum).
"""

from __future__ import annotations

import argparse
import random
from collections import Counter

import httpx

from nano import world


def families(it: world.Item) -> dict[str, tuple[tuple[int, str, int], str]]:
    other = "-" if it.op == "+" else "+"
    return {"asked": ((it.a, it.op, it.b), it.response), "other operation": ((it.a, other, it.b), it.response),
            "first operand +10": ((it.a + 10, it.op, it.b), it.response),
            "asked, answer only": ((it.a, it.op, it.b), f"The answer is {it.answer}.")}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--n", type=int, default=150)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    items, truth = [], []
    for _ in range(args.n):
        it = world.make_item(rng, "eval")
        for family, ((a, op, b), response) in families(it).items():
            text = rng.choice(world.QUESTION_TEMPLATES).format(a=a, op=op, b=b)
            items.append({"question": it.question, "response": response, "rubric": [{"text": text}]})
            truth.append((family, float(it.answer == (a + b if op == "+" else a - b))))
    r = httpx.post(f"{args.url}/score", timeout=900, json={"judge": "nano-rubric", "items": items, "cache": False,
                                                           "policy": {"answer": "none"}})
    r.raise_for_status()
    right, total = Counter(), Counter()
    for (family, t), res in zip(truth, r.json()["results"], strict=True):
        total[family] += 1
        right[family] += (res.get("components") or [{}])[0].get("reward") == t
    for family in total:
        print(f"{family:>20}: {right[family]}/{total[family]} right")


if __name__ == "__main__":
    main()
