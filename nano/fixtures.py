"""Fixtures in the formats of ``libra-serve bench`` / ``traces`` (Libra Bench rows) and ``label``
(unlabeled question/responses rows), drawn from the nano judge's world so the bundled judge can judge
them: ``python -m nano.fixtures`` rewrites both files (seeded, reproducible).

``libra_bench_nano.jsonl`` has Libra Bench's fields and shape: several subsets of different sizes, each
half correct and half incorrect, and several generator models with different styles. The subsets:

- ``add-3digit`` (120): additions of the kind the judge was trained on (evaluation split);
- ``sub-3digit`` (80): subtractions, same;
- ``ood-4digit`` (40): a four-digit operand, outside the judge's training world (its working has four
  columns and it never saw a four-digit operand), where a judge's accuracy is expected to drop: the
  bench should show a weak subset, as Libra Bench shows a judge's weak sources.

``unlabeled_nano.jsonl`` has 40 questions with 4 responses each; some questions' responses are all
correct or all wrong, which give no DPO pair.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from nano import world

HERE = Path(__file__).resolve().parent
BENCH_PATH = HERE / "libra_bench_nano.jsonl"
UNLABELED_PATH = HERE / "unlabeled_nano.jsonl"

GENERATORS = {  # model -> the response styles it writes (world.response kinds)
    "nano-gen-terse": (0, 1),
    "nano-gen-steps": (2, 3),
    "nano-gen-boxed": (4,),
}


def _response(rng: random.Random, model: str, a: int, op: str, b: int, answer: int) -> str:
    while True:  # world.response picks a style at random; keep the generator's own styles
        state = rng.getstate()
        text = world.response(rng, a, op, b, answer)
        kind = _kind(text)
        if kind in GENERATORS[model]:
            return text
        rng.setstate(state)
        rng.random()


def _kind(text: str) -> int:
    if text.startswith("Computing"):
        return 4
    if text.startswith("First"):
        return 3
    if text.startswith("We need"):
        return 2
    return 1 if " is " in text else 0


def _bench_row(rng: random.Random, index: int, subset: str, model: str, a: int, op: str, b: int,
               correct: bool) -> dict:
    truth = a + b if op == "+" else a - b
    answer = truth if correct else world.wrong_answer(rng, a, op, b, truth)
    response = _response(rng, model, a, op, b, answer)
    cot = f"<think>\nLet me work out {a} {op} {b} column by column and check the result.\n</think>\n\n{response}"
    return {"index": index, "question": rng.choice(world.QUESTION_TEMPLATES).format(a=a, op=op, b=b),
            "response": response, "label": int(correct), "model": model, "reference": str(truth),
            "subset": subset, "response_with_cot": cot}


def bench_rows(seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    models = list(GENERATORS)
    rows: list[dict] = []
    seen: set[tuple[int, str, int]] = set()
    for subset, n, op in (("add-3digit", 120, "+"), ("sub-3digit", 80, "-"), ("ood-4digit", 40, None)):
        made = 0
        while made < n:
            if op is None:
                a, b, o = rng.randrange(1000, 10000), rng.randrange(10, 1000), rng.choice("+-")
            else:
                item = world.make_item(rng, "eval")
                a, b, o = item.a, item.b, item.op
                if o != op:
                    continue
            if (a, o, b) in seen:
                continue
            seen.add((a, o, b))
            rows.append(_bench_row(rng, len(rows), subset, models[made % len(models)], a, o, b,
                                   correct=made % 2 == 0))
            made += 1
    return rows


def unlabeled_rows(seed: int = 11, questions: int = 40, per_question: int = 4) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for q in range(questions):
        item = world.make_item(rng, "eval")
        truth = item.truth
        mix = q % 4  # 0: mixed, 1: all correct, 2: all wrong, 3: one correct
        responses = []
        for j in range(per_question):
            correct = {0: j % 2 == 0, 1: True, 2: False, 3: j == 0}[mix]
            answer = truth if correct else world.wrong_answer(rng, item.a, item.op, item.b, truth)
            responses.append(world.response(rng, item.a, item.op, item.b, answer))
        rows.append({"id": f"q{q:03d}", "question": item.question, "responses": responses})
    return rows


def write(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    write(BENCH_PATH, bench_rows())
    write(UNLABELED_PATH, unlabeled_rows())
    print(f"wrote {BENCH_PATH} and {UNLABELED_PATH}")
