"""A reference nothing consults is said, not dropped: the result's ``notes``, the counter, the log and
``GET /judges`` (the issue: a trainer sending labels to the reference-free default judge got a judge that
never saw them). Whether a reference is used is ``JudgeOptions.uses_reference``: the profile shows it
(``required`` or ``optional``), or a mode other than ``judge`` checks it with math-verify."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import replace

import pytest

from service.judge.profiles import REFERENCE_MODES, load_all, load_profile
from service.judge.types import JudgeOptions
from service.metrics import metric_sum
from tests.helpers import make_client

Q = "What is 347 + 58?"
CHATML = f"<|im_start|>user\n{Q}<|im_end|>\n<|im_start|>assistant\n"
UNUSED = ["reference_unused"]


def unused_count(client, judge: str) -> float:
    return metric_sum(client.get("/metrics").text, "libra_references_unused_total", {"judge": judge})


@pytest.mark.parametrize(("reference", "mode", "used"), [
    ("unused", "judge", False),
    ("unused", "verify", True),  # math-verify reads it even though the judge is never shown it
    ("unused", "hybrid", True),
    ("unused", "both", True),
    ("required", "judge", True),
    ("optional", "judge", True),  # shown whenever given
])
def test_what_uses_a_reference(reference, mode, used):
    profile = replace(load_profile("nano"), reference=reference)
    assert JudgeOptions.from_profile(profile, mode=mode).uses_reference is used
    assert profile.shows_reference is (reference != "unused")


def test_a_reference_free_judge_notes_each_item_whose_reference_it_ignores(engine, caplog):
    items = [
        {"question": Q, "response": "347 + 58 = 405.", "reference": "405"},
        {"question": Q, "response": "347 + 58 = 415.", "reference": 405},  # a number is a reference too
        {"question": Q, "response": "347 + 58 = 405."},  # no reference: nothing to say
        {"question": Q, "response": "347 + 58 = 415.", "reference": ""},  # empty is none
        {"question": Q, "response": "Thought process:", "reference": "405"},  # decided early: still ignored
    ]
    with make_client(engine, verify_workers=0) as client, caplog.at_level(logging.WARNING, "service.api.serving"):
        body = client.post("/score", json={"judge": "nano", "items": items}).json()
        results = body["results"]
        assert [r["notes"] for r in results] == [UNUSED, UNUSED, [], [], UNUSED]
        assert [r["status"] for r in results] == ["ok", "ok", "ok", "ok", "no_answer"]  # judged as before
        assert unused_count(client, "nano") == 3
        client.post("/score", json={"judge": "nano", "items": items[:1]})
        assert unused_count(client, "nano") == 4
    warnings = [r for r in caplog.records if "ignores references" in r.getMessage()]
    assert len(warnings) == 1  # once per judge, not every training step
    assert "libra-ref" in warnings[0].getMessage() and "'nano'" in warnings[0].getMessage()


def test_the_note_is_per_item_when_items_share_a_judgment(engine):
    """A reference-free profile leaves the reference out of the judgment key: an item with one and its
    twin without share one judgment (and the cache), yet only the first carries the note."""
    twin = {"question": Q, "response": "347 + 58 = 405."}
    with make_client(engine, verify_workers=0) as client:
        results = client.post("/score", json={"judge": "nano", "items": [{**twin, "reference": "405"}, twin]}
                              ).json()["results"]
        assert [r["notes"] for r in results] == [UNUSED, []]
        assert results[1]["cached"] and engine.judge_calls() == 1
        again = client.post("/score", json={"judge": "nano", "items": [twin, {**twin, "reference": "405"}]}
                            ).json()["results"]
        assert [(r["notes"], r["cached"]) for r in again] == [([], True), (UNUSED, True)]


def test_streamed_lines_carry_the_note(engine):
    items = [{"question": Q, "response": "347 + 58 = 405.", "reference": "405"},
             {"question": Q, "response": "347 + 58 = 415."}]
    with make_client(engine, verify_workers=0) as client:
        resp = client.post("/score", json={"judge": "nano", "items": items, "stream": True})
        lines = [json.loads(line) for line in resp.text.splitlines()]
    notes = {line["index"]: line["notes"] for line in lines if "index" in line}
    assert notes == {0: UNUSED, 1: []} and lines[-1]["done"] is True


def test_no_note_where_the_reference_is_used(engine):
    item = {"question": Q, "response": "347 + 58 = 405. The answer is \\boxed{405}.", "reference": "405"}
    with make_client(engine, verify_workers=1) as client:
        shown = client.post("/score", json={"judge": "libra-ref", "items": [item, {**item, "reference": None}],
                                            "return_prompt": True}).json()["results"]
        assert [r["notes"] for r in shown] == [[], []]
        assert "## Reference answer\n405" in shown[0]["prompt"][0]["content"]
        assert shown[1]["status"] == "invalid"  # required: the status says it, no note needed
        for mode in ("verify", "hybrid", "both"):
            [r] = client.post("/score", json={"judge": "nano", "mode": mode, "items": [item]}).json()["results"]
            assert r["notes"] == [] and r["verify"]["status"] == "correct", mode
        text = client.get("/metrics").text
        assert metric_sum(text, "libra_references_unused_total") == 0
        assert re.search(r"# TYPE libra_references_unused(_total)? counter", text)  # declared before any count


def test_judges_shows_each_profiles_reference_use(engine):
    with make_client(engine, verify_workers=0) as client:
        judges = {j["name"]: j["reference"] for j in client.get("/judges").json()["judges"]}
        spec = client.get("/openapi.json").json()["components"]["schemas"]
    assert judges == {name: p.reference for name, p in load_all().items()}
    assert judges["libra"] == judges["nano"] == "unused" and judges["libra-ref"] == "required"
    assert spec["JudgeInfo"]["properties"]["reference"]["enum"] == list(REFERENCE_MODES)
    notes = spec["ScoreResult"]["properties"]["notes"]
    assert notes["items"]["$ref"].endswith("/ItemNote") and spec["ItemNote"]["enum"] == UNUSED
    assert "notes" not in spec["ScoreResult"].get("required", [])  # additive: old clients need not read it


def test_the_trainer_routes_keep_their_shapes_and_count_the_ignored_labels(engine):
    queries = [CHATML + "347 + 58 = 405.<|im_end|>", CHATML + "347 + 58 = 415.<|im_end|>"]
    with make_client(engine, verify_workers=0) as client:
        plain = client.post("/get_reward", json={"query": queries, "prompts": [CHATML] * 2}).json()
        labelled = client.post("/get_reward", json={"query": queries, "prompts": [CHATML] * 2,
                                                    "labels": ["405", "405"]}).json()
        assert labelled == plain == {"rewards": [1.0, 0.0], "scores": [1.0, 0.0],
                                     "extra_logs": {"judge_failed": [0.0, 0.0], "judge_forced": [0.0, 0.0]}}
        assert unused_count(client, "nano") == 2
        slime = {"prompt": CHATML, "response": "347 + 58 = 405.", "label": 405}
        reply = client.post("/slime/reward", json=slime).json()
        assert reply == {"reward": 1.0, "status": "ok", "verdict": "correct", "verdict_prob": reply["verdict_prob"],
                         "failed": False, "message": None}
        assert client.post("/slime/reward/value", json=slime).json() == 1.0
        assert unused_count(client, "nano") == 4
        client.post("/get_reward?judge=libra-ref", json={"query": queries, "prompts": [CHATML] * 2,
                                                         "labels": ["405", "405"]})
        assert unused_count(client, "libra-ref") == 0
