"""The offline commands' logic without a server: metrics by hand, input validation, resumable logs,
DPO pairing and best-of-N, rejection sampling, reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from libra_eval import label, report, traces
from libra_eval.accuracy import bench_metrics
from libra_eval.data import DataError, load_bench, load_unlabeled
from libra_eval.runner import ResultLog, RunError, prepare_run_dir

FIXED = Path(__file__).resolve().parents[1] / "fixtures" / "bench_results.jsonl"


def fixed_records() -> list[dict]:
    return [json.loads(line) for line in FIXED.read_text().splitlines()]


def test_metrics_of_the_fixed_result_file_match_the_hand_computation():
    # big: 6 items, right T T F T T F(no verdict) -> 4/6; small: 2 items both wrong -> 0/2;
    # mid: 4 items all right (0.75 and 0.25 are on either side of the threshold) -> 4/4.
    m = bench_metrics(fixed_records())
    assert m["subset_accuracy"] == pytest.approx({"big": 4 / 6, "small": 0.0, "mid": 1.0})
    assert m["mean_subset_accuracy"] == pytest.approx(5 / 9)  # (4/6 + 0 + 1) / 3 = 0.556
    assert m["accuracy"] == pytest.approx(8 / 12)  # plain accuracy differs: a wrong formula fails
    assert m["model_accuracy"] == pytest.approx({"m1": 4 / 8, "m2": 1.0})
    assert m["confusion"] == {"correct": {"judged_correct": 4, "judged_incorrect": 2, "no_verdict": 0},
                              "incorrect": {"judged_correct": 1, "judged_incorrect": 4, "no_verdict": 1}}
    # correct: P 4/5, R 4/6, F1 8/11; incorrect: P 4/6, R 4/6, F1 2/3.
    assert m["per_class"]["correct"]["f1"] == pytest.approx(8 / 11)
    assert m["precision"] == pytest.approx((4 / 5 + 4 / 6) / 2)
    assert m["recall"] == pytest.approx(4 / 6)
    assert m["f1"] == pytest.approx((8 / 11 + 2 / 3) / 2)
    assert m["unparsed_rate"] == m["forced_rate"] == m["no_verdict_rate"] == pytest.approx(1 / 12)
    assert m["completion_tokens_per_item"] == pytest.approx(62.5) and m["prompt_tokens_per_item"] == 100
    assert m["n_items"] == 12 and m["subset_items"] == {"big": 6, "mid": 4, "small": 2}


def test_the_threshold_moves_predictions():
    m = bench_metrics(fixed_records(), threshold=0.8)  # 0.75 now reads as incorrect: mid drops to 3/4
    assert m["subset_accuracy"]["mid"] == pytest.approx(0.75)


def write(tmp_path: Path, text: str, name: str = "data.jsonl") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


ROW = {"index": 7, "question": "q", "response": "r", "label": 1, "model": "m", "subset": "s",
       "reference": "1", "response_with_cot": "<think>t</think> r"}


@pytest.mark.parametrize(("text", "message"), [
    ("{not json\n", "data.jsonl:1: not valid JSON"),
    ("[1, 2]\n", "data.jsonl:1: expected a JSON object, got list"),
    (json.dumps({**ROW, "label": 2}) + "\n", "data.jsonl:1: field 'label' must be 1 (correct) or 0"),
    (json.dumps({k: v for k, v in ROW.items() if k != "label"}) + "\n", "field 'label' must be 1"),
    (json.dumps({**ROW, "question": None}) + "\n", "data.jsonl:1: missing field 'question'"),
    (json.dumps({**ROW, "response": 5}) + "\n", "field 'response' must be a string, got int"),
    (json.dumps(ROW) + "\n\n" + json.dumps(ROW) + "\n", "data.jsonl:3: index 7 already used on line 1"),
    ("\n", "no items"),
])
def test_bench_data_errors_name_the_line_and_field(tmp_path, text, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_bench(write(tmp_path, text))


def test_bench_data_field_choice_and_defaults(tmp_path):
    path = write(tmp_path, json.dumps(ROW) + "\n" + json.dumps({"question": "q2", "response": "r2", "label": False,
                                                                "response_with_cot": "c2"}) + "\n")
    rows = load_bench(path, "response_with_cot")
    assert [r.response for r in rows] == ["<think>t</think> r", "c2"]
    assert (rows[1].key, rows[1].label, rows[1].model, rows[1].subset) == ("2", 0, "unknown", "all")
    assert rows[0].item(with_reference=True) == {"id": "7", "question": "q", "response": "<think>t</think> r",
                                                 "reference": "1"}
    with pytest.raises(DataError, match="missing field 'response'"):
        load_bench(write(tmp_path, json.dumps({"question": "q", "label": 1}) + "\n"))
    with pytest.raises(DataError, match="cannot read"):
        load_bench(tmp_path / "absent.jsonl")


def test_unlabeled_data_errors(tmp_path):
    with pytest.raises(DataError, match="data.jsonl:1: field 'responses' must be a non-empty list"):
        load_unlabeled(write(tmp_path, json.dumps({"question": "q", "responses": []}) + "\n"))
    with pytest.raises(DataError, match=r"responses\[1\] must be a string"):
        load_unlabeled(write(tmp_path, json.dumps({"question": "q", "responses": ["a", 3]}) + "\n"))
    rows = load_unlabeled(write(tmp_path, json.dumps({"id": "x", "question": "q", "responses": ["a", "b"]}) + "\n"))
    assert rows[0].key == "x" and rows[0].responses == ("a", "b")


def test_result_log_drops_a_torn_last_line(tmp_path):
    log = ResultLog(tmp_path / "results.jsonl")
    log.append([{"key": "a", "v": 1}, {"key": "b", "v": 2}])
    with open(log.path, "a") as fh:
        fh.write('{"key": "c", "v"')  # the previous run died mid-write
    assert list(log.load()) == ["a", "b"]
    log.append([{"key": "c", "v": 3}])
    assert list(log.load()) == ["a", "b", "c"]


def test_a_run_directory_refuses_other_options_unless_fresh(tmp_path):
    log = tmp_path / "results.jsonl"
    prepare_run_dir(tmp_path, {"options": {"judge": "nano"}}, [log], fresh=False)
    log.write_text('{"key": "a"}\n')
    prepare_run_dir(tmp_path, {"options": {"judge": "nano"}}, [log], fresh=False)  # same options: resume
    with pytest.raises(RunError, match="different options"):
        prepare_run_dir(tmp_path, {"options": {"judge": "libra"}}, [log], fresh=False)
    prepare_run_dir(tmp_path, {"options": {"judge": "libra"}}, [log], fresh=True)
    assert not log.exists()


def rec(reward, agreement=1.0):
    return {"reward": reward, "agreement": agreement}


def test_dpo_pairs_chosen_correct_rejected_incorrect_most_confident_first():
    responses = [("wrong-unsure", rec(0.0, 0.5)), ("right", rec(1.0)), ("none", rec(None)),
                 ("wrong-sure", rec(0.0, 1.0)), ("right-but-long", rec(1.0))]
    assert label.pairs_for(responses, 0.5, 1) == [("right", "wrong-sure")]
    assert label.pairs_for(responses, 0.5, 10) == [
        ("right", "wrong-sure"), ("right", "wrong-unsure"), ("right-but-long", "wrong-sure"),
        ("right-but-long", "wrong-unsure")]
    assert label.pairs_for([("a", rec(1.0)), ("b", rec(1.0))], 0.5, 5) == []  # all agree: no pair


def test_best_of_n_breaks_ties_by_agreement_then_length():
    picks = [(0, "long answer", rec(1.0, 1.0)), (1, "short", rec(1.0, 0.5)), (2, "mid one", rec(1.0, 1.0)),
             (3, "x", rec(0.0))]
    assert label.best_of_n(picks)[0] == 2
    assert label.best_of_n([(0, "a", rec(None))]) is None


def test_label_outputs_count_questions_without_pairs(tmp_path):
    from libra_eval.data import UnlabeledRow

    rows = [UnlabeledRow("q1", "Q1", ("a", "b"), None), UnlabeledRow("q2", "Q2", ("c", "d"), None),
            UnlabeledRow("q3", "Q3", ("e",), None)]
    records = {"q1/0": rec(1.0), "q1/1": rec(0.0), "q2/0": rec(1.0), "q2/1": rec(1.0), "q3/0": rec(None)}
    counts = label.write_outputs(rows, records, tmp_path, 0.5, 3)
    assert (counts["pairs"], counts["questions_with_pairs"], counts["questions_all_correct"],
            counts["questions_without_two_verdicts"], counts["best_of_n"]) == (1, 1, 1, 1, 2)
    assert [json.loads(x) for x in (tmp_path / "dpo_pairs.jsonl").read_text().splitlines()] == [
        {"prompt": "Q1", "chosen": "a", "rejected": "b"}]


def test_traces_keep_only_samples_that_agree_with_the_label():
    labels = {"correct": 1.0, "incorrect": 0.0}
    outputs = [{"text": "t1", "verdict": "correct", "status": "ok"},
               {"text": "t2", "verdict": "incorrect", "status": "ok"},
               {"text": "t3", "verdict": None, "status": "unparsed"},
               {"text": "t4", "verdict": "correct", "status": "forced"}]
    assert traces.kept_samples(outputs, 1, labels, 0.5, keep_forced=False) == ["t1"]
    assert traces.kept_samples(outputs, 1, labels, 0.5, keep_forced=True) == ["t1", "t4"]
    assert traces.kept_samples(outputs, 0, labels, 0.5, keep_forced=False) == ["t2"]


def test_report_and_compare(tmp_path):
    m = bench_metrics(fixed_records())
    m["run"] = {"judge": "nano", "model": "nano-judge", "data": "d.jsonl", "field": "response", "samples": None,
                "scored_this_run": 12, "resumed_items": 0, "wall_s": 1.0, "items_per_s": 12.0}
    files = report.charts(m, tmp_path)
    for name in files.values():
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = report.markdown(m, files)
    assert "Mean subset accuracy (the dataset card's metric): 55.6%" in text and "plain accuracy 66.7%" in text
    (tmp_path / "a.json").write_text(json.dumps(m))
    m2 = {**m, "mean_subset_accuracy": 0.6, "subset_accuracy": {**m["subset_accuracy"], "small": 0.5}}
    (tmp_path / "b.json").write_text(json.dumps(m2))
    table = report.compare(tmp_path / "a.json", tmp_path / "b.json")
    assert "| **mean subset accuracy** | 55.6% | 60.0% | +4.4 |" in table
    assert "| subset small | 0.0% | 50.0% | +50.0 |" in table
