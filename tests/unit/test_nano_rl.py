"""The closed loop's bookkeeping (``nano/rl.py``): reading paid completions against the truth, the
judges' AUC, and the table's summary. The loop itself runs on the real engine in
tests/integration/test_rl_live.py."""

from __future__ import annotations

import pytest

from nano import policy, rl


@pytest.mark.parametrize(("question", "truth"), [
    ("What is 47 + 35?", 82), ("Compute 90 - 9.", 81), ("Calculate 5 + 0.", 5),
    ("What is the value of 12 - 12?", 0)])
def test_the_observer_reads_the_truth_from_every_question_template(question, truth):
    assert policy.truth_of(question) == truth


def test_every_template_the_loop_asks_is_read():
    for q, truth in policy.questions(200, seed=3) + policy.heldout_questions(50):
        assert policy.truth_of(q) == truth


@pytest.mark.parametrize(("response", "why"), [
    ("First 47 + 30 = 77, then 77 + 5 = 82. The answer is 82.", None),
    ("47 + 35 is 82. The answer is 82, or possibly 83.", "hedged"),
    ("The answer is 83, or possibly 82.", "hedged"),
    ("\\boxed{81} \\boxed{82}", "hedged"),  # the service's rule, not only the held-out metric's
    ("First 47 + 30 = 77, then 77 + 5 = 82. The answer is 83.", "right_then_wrong"),
    ("First 47 + 30 = 77, then 77 + 5 = 81. The answer is 81.", "wrong"),
    ("First 57 + 30 = 87, then 87 + 5 = 92. The answer is 92.", "misquoted"),  # another problem, worked right
    ("47 + 35 = 81.", "wrong"),
    ("The answer is", "no_answer"),
])
def test_a_paid_completion_is_classed_by_why_it_is_not_right(response, why):
    assert rl.paid_but_wrong("What is 47 + 35?", response) == why
    assert why is None or why in rl.PAID_WRONG_CLASSES


def test_a_tables_kept_examples_are_reread_with_the_current_classes(capsys):
    step = {"paid": 4, "paid_wrong": {"wrong": 2}, "paid_wrong_examples": [
        {"question": "What is 47 + 35?", "response": "First 57 + 30 = 87, then 87 + 5 = 92. The answer is 92."},
        {"question": "What is 47 + 35?", "response": "47 + 35 = 81."}]}
    counts = rl.print_paid_wrong({"runs": [{"arm": "judge", "steps": [step, step]}, {"arm": "rule", "steps": [{}]}]})
    assert {k: v for k, v in counts["judge"].items() if not k.startswith("example")} == {
        "paid": 8, "wrong_counted": 4, "kept": 4, "misquoted": 2, "wrong": 2}
    assert "rule" not in counts and "4 of 8 paid completions wrong (50.0%)" in capsys.readouterr().out


def test_auc_counts_ties_half_and_needs_both_labels():
    assert rl.auc([0.9, 0.8, 0.1], [1, 1, 0]) == 1.0
    assert rl.auc([0.1, 0.9], [1, 0]) == 0.0
    assert rl.auc([0.5, 0.5], [1, 0]) == 0.5
    assert rl.auc([0.5, 0.7], [1, 1]) is None


def _step(paid: int, wrong: dict[str, int]) -> dict:
    return {"wall_s": 2.0, "wait_share": 0.25, "judge_tokens": 100.0, "items": 16, "items_per_s": 40.0,
            "hedged": 0.0, "no_answer": 0.0, "paid": paid, "paid_wrong": wrong}


def test_the_summary_reports_what_the_reward_paid_for_without_it_being_right():
    runs = [rl.Run("judge", seed, before=0.3, after=0.4 + 0.02 * seed,
                   steps=[_step(10, {"hedged": 2})] * 3 + [_step(10, {})] * 3 + [_step(8, {"wrong": 1})] * 3)
            for seed in (1, 2)]
    (row,) = rl.summarize(runs)
    assert row["gain"] == pytest.approx(13.0) and row["gain_min"] == pytest.approx(12.0)
    assert row["paid_wrong_first"] == pytest.approx(0.2) and row["paid_wrong_last"] == pytest.approx(1 / 8)
    assert row["paid_wrong_classes"] == {"hedged": 12, "wrong": 6} and row["paid_total"] == 168


def test_runs_recorded_before_the_classes_still_summarize():
    old = {k: v for k, v in _step(0, {}).items() if k not in ("paid", "paid_wrong")}
    (row,) = rl.summarize([rl.Run("rule", 1, before=0.3, after=0.4, steps=[old])])
    assert "paid_wrong_last" not in row and row["wait_share"] == 0.25
