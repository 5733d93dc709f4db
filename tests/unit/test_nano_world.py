"""The nano world: the judge's working is right, the splits are disjoint, the shipped set is reproducible."""

import random

from nano import heldout, world
from service.judge.verdict import parse_verdict

PATTERN = r"\\boxed\{\s*(correct|incorrect)\s*\}"


def test_judge_output_verdict_matches_label_and_working_is_arithmetic():
    rng = random.Random(0)
    for _ in range(3000):
        item = world.make_item(rng, None)
        out = world.judge_output(item)
        verdict = parse_verdict(out, "</think>", PATTERN).label
        assert verdict == ("correct" if item.label else "incorrect"), out
        digits = [line.split("=")[1][1] for line in out.splitlines() if line[:2] in ("1:", "2:", "3:", "4:")]
        assert int("".join(reversed(digits))) == item.truth


def test_responses_end_with_their_answer_and_labels_are_balanced():
    rng = random.Random(1)
    items = [world.make_item(rng) for _ in range(2000)]
    assert 0.45 < sum(i.label for i in items) / len(items) < 0.55
    for item in items:
        assert item.response.rstrip(".}").endswith(str(item.answer))
        assert 0 <= item.answer < 10**world.COLUMNS


def test_train_and_eval_problems_are_disjoint():
    rng = random.Random(2)
    train = {(i.a, i.op, i.b) for i in (world.make_item(rng, "train") for _ in range(5000))}
    evals = {(i.a, i.op, i.b) for i in world.heldout(1000)}
    assert not train & evals
    assert all(world.split_of(*key) == "eval" for key in evals)


def test_shipped_heldout_file_is_the_generated_one():
    assert heldout.load() == heldout.rows()
    assert len(heldout.load()) == 1000
