"""The nano judge's small world: arithmetic questions, responses, and the judge's own working.

This module is pure Python (no torch) so the trainer, the held-out set, tests and benchmarks all draw
items from one definition.

Questions are ``a + b`` or ``a - b`` (``a >= b``) with operands of 1-3 digits: about 1.6 million
distinct problems, far more than training ever sees, so the judge must learn the algorithm. A problem
belongs to the training or the evaluation split by a hash of ``(a, op, b)``, so no held-out problem is
ever trained on.

The judge's thinking is designed so that every step is *local and checkable* by a tiny transformer:

    <think>
    347+58=405
    1: 7+8+0=15 5=5 ok
    2: 4+5+1=10 0=0 ok
    3: 3+0+1=04 4=4 ok
    4: 0+0+0=00 0=0 ok
    </think>

    \\boxed{correct}

Line 1 copies the two operands and the response's final answer. Column line ``i`` (units first, always
four columns, missing digits read as 0) adds (or subtracts, with borrow) the i-th digits of ``a`` and
``b`` plus the carry written at the start of the previous line's result (``cd``: carry/borrow out,
digit), then compares the digit ``d`` with the answer's i-th digit (``=`` or ``!``), then keeps a running
flag (``ok`` while every column matched, ``no`` after). The verdict copies the last flag.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

COLUMNS = 4  # operands have <= 3 digits, so results and wrong answers fit in 4 digits

QUESTION_TEMPLATES = (
    "What is {a} {op} {b}?",
    "Compute {a} {op} {b}.",
    "Calculate {a} {op} {b}.",
    "What is the value of {a} {op} {b}?",
)


@dataclass(frozen=True)
class Item:
    """One judging item of the small world; ``label`` is 1 when the response's answer is correct."""

    a: int
    op: str
    b: int
    answer: int
    question: str
    response: str

    @property
    def truth(self) -> int:
        return self.a + self.b if self.op == "+" else self.a - self.b

    @property
    def label(self) -> int:
        return int(self.answer == self.truth)


def split_of(a: int, op: str, b: int) -> str:
    """'eval' for ~5% of problems, 'train' otherwise; stable across runs and machines."""
    digest = hashlib.sha256(f"{a}{op}{b}".encode()).digest()
    return "eval" if digest[0] < 13 else "train"


def _operand(rng: random.Random) -> int:
    digits = rng.choices((1, 2, 3), weights=(0.15, 0.35, 0.5))[0]
    return rng.randrange(0 if digits == 1 else 10 ** (digits - 1), 10**digits)


def wrong_answer(rng: random.Random, a: int, op: str, b: int, truth: int) -> int:
    """A plausible mistake: off by a place value, a dropped carry, swapped digits, or the wrong op."""
    for _ in range(100):
        kind = rng.randrange(7)
        if kind == 0:
            cand = truth + rng.choice((-1, 1, -2, 2))
        elif kind == 1:
            cand = truth + rng.choice((-10, 10, -20, 20))
        elif kind == 2:
            cand = truth + rng.choice((-100, 100, -1000, 1000))
        elif kind == 3:  # column arithmetic without carries/borrows
            digits = []
            x, y = a, b
            for _ in range(COLUMNS):
                dx, dy = x % 10, y % 10
                digits.append((dx + dy) % 10 if op == "+" else abs(dx - dy))
                x, y = x // 10, y // 10
            cand = int("".join(map(str, reversed(digits))))
        elif kind == 4:  # two adjacent digits swapped
            s = list(str(truth))
            if len(s) < 2:
                continue
            i = rng.randrange(len(s) - 1)
            s[i], s[i + 1] = s[i + 1], s[i]
            cand = int("".join(s))
        elif kind == 5:  # the other operation
            cand = a - b if op == "+" else a + b
        else:  # one digit replaced
            s = list(str(truth))
            i = rng.randrange(len(s))
            s[i] = str(rng.randrange(10))
            cand = int("".join(s))
        if cand != truth and 0 <= cand < 10**COLUMNS:
            return cand
    return truth + 1 if truth + 1 < 10**COLUMNS else truth - 1


def response(rng: random.Random, a: int, op: str, b: int, answer: int) -> str:
    """A response that works the problem and ends with its final answer (the last number)."""
    kind = rng.randrange(5)
    if kind == 0:
        return f"{a} {op} {b} = {answer}."
    if kind == 1:
        return f"{a} {op} {b} is {answer}. The answer is {answer}."
    if kind == 2:
        return f"We need {a} {op} {b}. Working it out gives {answer}. So the answer is {answer}."
    if kind == 3:
        tens = b - b % 10
        mid = a + tens if op == "+" else a - tens
        # A wrong response carries its error somewhere in the working, not only at the end.
        second = answer - mid if op == "+" else mid - answer
        op2 = op
        if second < 0:
            second, op2 = -second, ("-" if op == "+" else "+")
        return f"First {a} {op} {tens} = {mid}, then {mid} {op2} {second} = {answer}. The answer is {answer}."
    return f"Computing {a} {op} {b} step by step, the result is \\boxed{{{answer}}}."


def make_item(rng: random.Random, split: str | None = "train", correct: bool | None = None) -> Item:
    """Draw one item from ``split`` ('train', 'eval' or None for either); correct half the time."""
    while True:
        a, b, op = _operand(rng), _operand(rng), rng.choice("+-")
        if op == "-" and b > a:
            a, b = b, a
        if split is None or split_of(a, op, b) == split:
            break
    truth = a + b if op == "+" else a - b
    if correct is None:
        correct = rng.random() < 0.5
    answer = truth if correct else wrong_answer(rng, a, op, b, truth)
    question = rng.choice(QUESTION_TEMPLATES).format(a=a, op=op, b=b)
    return Item(a, op, b, answer, question, response(rng, a, op, b, answer))


def score_items(n: int, seed: int, id_prefix: str | None = None) -> list[dict]:
    """``n`` fresh items of the eval split as /score takes them (seeded, so a test's items are its own and
    no server's cache answers them); each ``id`` is ``f"{id_prefix}{i}"`` when a prefix is given."""
    rng = random.Random(seed)
    drawn = (make_item(rng, "eval") for _ in range(n))
    return [{**({"id": f"{id_prefix}{i}"} if id_prefix is not None else {}), "question": it.question,
             "response": it.response} for i, it in enumerate(drawn)]


def judge_output(item: Item) -> str:
    """The text the nano judge is trained to generate for ``item`` (thinking, then the verdict)."""
    lines = [f"{item.a}{item.op}{item.b}={item.answer}"]
    carry, ok = 0, True
    for i in range(COLUMNS):
        x = item.a // 10**i % 10
        y = item.b // 10**i % 10
        r = item.answer // 10**i % 10
        if item.op == "+":
            total = x + y + carry
            out, digit = total // 10, total % 10
        else:
            total = x - y - carry
            out, digit = int(total < 0), total % 10
        ok = ok and digit == r
        cmp = "=" if digit == r else "!"
        lines.append(f"{i + 1}: {x}{item.op}{y}{item.op}{carry}={out}{digit} {digit}{cmp}{r} {'ok' if ok else 'no'}")
        carry = out
    verdict = "correct" if ok else "incorrect"
    return "<think>\n" + "\n".join(lines) + "\n</think>\n\n\\boxed{" + verdict + "}"


def heldout(n: int = 1000, seed: int = 20260724) -> list[Item]:
    """``n`` distinct evaluation-split items, half correct (the shipped held-out set's recipe)."""
    rng = random.Random(seed)
    seen: set[tuple[int, str, int]] = set()
    items: list[Item] = []
    while len(items) < n:
        item = make_item(rng, "eval", correct=len(items) % 2 == 0)
        key = (item.a, item.op, item.b)
        if key not in seen:
            seen.add(key)
            items.append(item)
    return items
