"""``libra-serve bench``, ``label`` and ``traces`` end to end: the real CLI as a child process, against
the session's live service (real vLLM engine, nano judge), on the shipped fixtures."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from libra_eval.accuracy import bench_metrics
from nano.fixtures import BENCH_PATH, UNLABELED_PATH

pytestmark = pytest.mark.integration


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service.cli", *args, "--no-progress"], capture_output=True,
                          text=True, timeout=600)


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def truth_of(question: str) -> int:
    a, op, b = re.search(r"(\d+) ([+-]) (\d+)", question).groups()
    return int(a) + int(b) if op == "+" else int(a) - int(b)


def final_number(response: str) -> int:
    return int(re.findall(r"\d+", response)[-1])


def test_bench_end_to_end_and_resume(live_server, tmp_path):
    out = tmp_path / "bench"
    run = cli("bench", str(BENCH_PATH), "--url", live_server.url, "--out", str(out))
    assert run.returncode == 0, run.stderr
    m = json.loads((out / "metrics.json").read_text())
    results = lines(out / "results.jsonl")
    assert m["n_items"] == len(results) == 240 and m["n_missing"] == 0
    assert {r["key"] for r in results} == {str(i) for i in range(240)}
    # The figures are the ones the per-item results give, and the in-distribution subsets are near perfect.
    again = bench_metrics(results)
    assert m["mean_subset_accuracy"] == pytest.approx(again["mean_subset_accuracy"])
    assert set(m["subset_accuracy"]) == {"add-3digit", "sub-3digit", "ood-4digit"}
    assert m["subset_accuracy"]["add-3digit"] >= 0.95 and m["subset_accuracy"]["sub-3digit"] >= 0.95
    assert set(m["model_accuracy"]) == {"nano-gen-terse", "nano-gen-steps", "nano-gen-boxed"}
    assert m["run"]["judge"] == "nano" and m["run"]["model"] == "nano-judge" and m["run"]["scored_this_run"] == 240
    for png in ("subset_accuracy.png", "confusion.png", "model_accuracy.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    report = (out / "report.md").read_text()
    assert f"{100 * m['mean_subset_accuracy']:.1f}%" in report and "![Confusion matrix](confusion.png)" in report

    # Resume: a run that died after 140 items (and mid-line) scores only the 100 left.
    kept = (out / "results.jsonl").read_text().splitlines(keepends=True)[:140]
    (out / "results.jsonl").write_text("".join(kept) + '{"key": "17', encoding="utf-8")
    run = cli("bench", str(BENCH_PATH), "--url", live_server.url, "--out", str(out))
    assert run.returncode == 0, run.stderr
    m2 = json.loads((out / "metrics.json").read_text())
    assert (m2["run"]["resumed_items"], m2["run"]["scored_this_run"]) == (140, 100)
    assert len(lines(out / "results.jsonl")) == 240
    assert m2["mean_subset_accuracy"] == pytest.approx(m["mean_subset_accuracy"])

    # Other options in the same directory are refused, not mixed in.
    run = cli("bench", str(BENCH_PATH), "--url", live_server.url, "--out", str(out), "--samples", "2")
    assert run.returncode == 2 and "different options" in run.stderr


def test_bench_errors_are_clear(live_server, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "response": "r", "label": "yes"}\n')
    run = cli("bench", str(bad), "--url", live_server.url, "--out", str(tmp_path / "o"))
    assert run.returncode == 2 and "bad.jsonl:1: field 'label' must be 1 (correct) or 0" in run.stderr
    run = cli("bench", str(BENCH_PATH), "--url", live_server.url, "--out", str(tmp_path / "o2"), "--judge", "nope")
    assert run.returncode == 2 and "no judge 'nope'" in run.stderr and "nano" in run.stderr


def test_label_end_to_end(live_server, tmp_path):
    out = tmp_path / "label"
    run = cli("label", str(UNLABELED_PATH), "--url", live_server.url, "--out", str(out), "--pairs-per-question", "2")
    assert run.returncode == 0, run.stderr
    questions = {q["id"]: q for q in lines(UNLABELED_PATH)}
    rewards = lines(out / "rewards.jsonl")
    assert len(rewards) == 160 and all(r["status"] == "ok" for r in rewards)
    verdict = {(r["id"], r["response_index"]): r["reward"] == 1.0 for r in rewards}
    truly = {(q, j): final_number(text) == truth_of(questions[q]["question"])
             for q in questions for j, text in enumerate(questions[q]["responses"])}
    assert sum(verdict[k] == truly[k] for k in truly) >= 155  # the nano judge is right on its own world

    # Pairs and counts follow the judge's verdicts: chosen judged correct, rejected judged incorrect.
    summary = json.loads((out / "summary.json").read_text())
    by_question = {q: [verdict[(q, j)] for j in range(4)] for q in questions}
    assert summary["questions_all_correct"] == sum(all(v) for v in by_question.values())
    assert summary["questions_all_incorrect"] == sum(not any(v) for v in by_question.values())
    mixed = [q for q, v in by_question.items() if any(v) and not all(v)]
    assert summary["questions_with_pairs"] == len(mixed) >= 15 and summary["best_of_n"] == 40
    pairs = lines(out / "dpo_pairs.jsonl")
    expected = sum(min(2, sum(v) * (4 - sum(v))) for q, v in by_question.items() if q in mixed)
    assert len(pairs) == summary["pairs"] == expected and set(pairs[0]) == {"prompt", "chosen", "rejected"}
    index = {(questions[q]["question"], text): (q, j) for q in questions
             for j, text in enumerate(questions[q]["responses"])}
    for p in pairs:
        assert verdict[index[(p["prompt"], p["chosen"])]] and not verdict[index[(p["prompt"], p["rejected"])]]
    for best in lines(out / "best_of_n.jsonl"):
        q = best["id"]
        assert verdict[(q, best["response_index"])] == any(by_question[q])
        assert best["response"] == questions[q]["responses"][best["response_index"]]


def test_traces_end_to_end(live_server, tmp_path):
    out = tmp_path / "traces"
    run = cli("traces", str(BENCH_PATH), "--url", live_server.url, "--out", str(out), "--samples", "3",
              "--temperature", "1.0", "--limit", "24")
    assert run.returncode == 0, run.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["items_scored"] == 24 and summary["samples"] == 72 and summary["kept"] >= 60
    rows = {r["index"]: r for r in (json.loads(x) for x in BENCH_PATH.read_text().splitlines())}
    rates = lines(out / "keep_rates.jsonl")
    assert len(rates) == 24 and all(0.0 <= r["keep_rate"] <= 1.0 for r in rates)
    sft = lines(out / "sft.jsonl")
    assert len(sft) == summary["written"] >= 24 * 0.8
    for line in sft:
        user, assistant = line["messages"]
        assert user["role"] == "user" and "Question: " in user["content"]
        assert assistant["role"] == "assistant" and "</think>" in assistant["content"]
        question = re.search(r"Question: (.*)\n", user["content"]).group(1)
        label = next(r["label"] for r in rows.values() if r["question"] == question)
        assert assistant["content"].endswith("\\boxed{correct}" if label else "\\boxed{incorrect}")
