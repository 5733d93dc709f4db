"""The rule-first measurement's inputs: numbers in words as text-answer data sets write them, and the cited
answer set (every row sourced, labelled, and in the form the measurement reads)."""

from __future__ import annotations

import json

import pytest

from libra_eval.rule_first import CITED, cited_items, nano_items, words
from service.judge.verifier import check_answer


@pytest.mark.parametrize("n, text", [(0, "zero"), (7, "seven"), (15, "fifteen"), (40, "forty"), (58, "fifty-eight"),
                                     (100, "one hundred"), (405, "four hundred five"),
                                     (1998, "one thousand nine hundred ninety-eight"), (-12, "minus twelve")])
def test_numbers_in_words(n, text):
    assert words(n) == text


def test_the_cited_set_is_sourced_labelled_and_readable():
    rows = [json.loads(line) for line in CITED.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len({r["id"] for r in rows}) >= 100
    assert {r["truth"] for r in rows} == {"correct", "incorrect"}
    assert all(r["source"] and r["form"] and r["reference"] and r["response"] for r in rows)
    assert not [r["id"] for r in rows if r["id"].startswith("xv-")]  # left out: NOTICE says why
    items = cited_items(CITED)
    assert sum(it["truth"] for it in items) == sum(r["truth"] == "correct" for r in rows)


def test_the_nano_set_puts_half_the_references_in_words_and_the_rule_rejects_those():
    items = nano_items(8)
    assert [it["form"] for it in items] == ["digits", "digits", "words", "words"] * 2
    right_in_words = [it for it in items if it["form"] == "words" and it["truth"]]
    assert right_in_words, "a seed with no right answer among the worded references tests nothing"
    assert {check_answer(it["reference"], it["response"])[0] for it in right_in_words} <= {"incorrect",
                                                                                          "inconclusive"}
