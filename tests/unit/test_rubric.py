"""Rubric rewards around the engine, on a FakeEngine grader (the real engine: tests/integration/
test_rubric_live.py): aggregation as tables, the rubric's bad input, the HTTP contract (components,
partial, holistic, the strategy switch, streaming, dedup per criterion) and the 422s."""

from __future__ import annotations

import json

import pytest

from service.engine.base import RequestKind
from service.engine.fake import FakeEngine
from service.judge.rubric import Criterion, aggregate, holistic_text, rubric_error
from tests.helpers import make_client
from tests.rubric_support import RUBRIC, grader

P, N = "positive", "negative"


def crit(weight=1.0, polarity=None, veto=False, id=None, text="x"):
    return Criterion(text=text, weight=weight, polarity=polarity, id=id, veto=veto)


@pytest.mark.parametrize("criteria, values, how, want", [
    # weighted: the satisfied share of the positive weights
    ([crit(5), crit(3), crit(1)], [1, 0, 1], "weighted", 6 / 9),
    ([crit(5), crit(3)], [0, 0], "weighted", 0.0),  # all failed
    # a pitfall committed costs its weight; an avoided one costs nothing
    ([crit(4), crit(2, N)], [1, 1], "weighted", 2 / 4),
    ([crit(4), crit(2, N)], [1, 0], "weighted", 1.0),
    ([crit(1), crit(5, N)], [1, 1], "weighted", 0.0),  # clipped at 0
    # a negative weight with an explicit polarity counts by its size: "avoids X" (positive) satisfied earns
    ([crit(4), crit(-2, P)], [0, 1], "weighted", 2 / 6),
    # veto first, whatever the rest
    ([crit(5), crit(1, veto=True)], [1, 0], "weighted", 0.0),
    ([crit(5), crit(1, N, veto=True)], [1, 1], "mean", 0.0),  # a committed veto pitfall
    ([crit(5), crit(1, veto=True)], [1, 1], "weighted", 1.0),
    # NeMo Gym's modes, over "good" values (a negative criterion's good is 1 - v)
    ([crit(), crit(), crit(1, N)], [1, 0, 0], "mean", 2 / 3),
    ([crit(), crit()], [1, 0.6], "min", 0.6),
    ([crit(), crit(1, N)], [1, 0], "all", 1.0),
    ([crit(), crit()], [1, 0.5], "all", 0.0),
    ([crit(), crit()], [0, 0.995], "any", 1.0),
    ([crit(), crit()], [0, 0.5], "any", 0.0),
    # probabilities (reward_mode prob) weigh in as they are
    ([crit(3), crit(1)], [0.5, 1.0], "weighted", 2.5 / 4),
])
def test_aggregation(criteria, values, how, want):
    assert aggregate(criteria, values, how) == pytest.approx(want)


@pytest.mark.parametrize("criteria, says", [
    ([], "the rubric is empty"),
    ([crit(), crit(text="  ")], "criterion 1 has empty text"),
    ([crit(id="a"), crit(id="a")], "criterion 'a': the id is used twice"),
    ([crit(), crit(-2, id="p")], "criterion 'p' has weight -2 and no polarity"),
    ([crit(0), crit(0)], "weights sum to zero"),
    ([crit(2, N)], "weights sum to zero"),  # only pitfalls: nothing to be a share of
    ([crit()] * 5, "the rubric has 5 criteria; this server's limit is 4"),
])
def test_bad_rubrics_name_the_criterion(criteria, says):
    assert says in rubric_error(criteria, limit=4)


def test_a_good_rubric_passes_and_lists_for_a_holistic_judge():
    rubric = [crit(5, text="States 42."), crit(-1, N, veto=True, text="Insults the reader.")]
    assert rubric_error(rubric, limit=4) is None
    assert holistic_text(rubric) == ("1. Criterion (weight 5): States 42.\n"
                                     "2. Pitfall (must not happen) (weight 1, required): Insults the reader.")


# -- the HTTP contract on a FakeEngine ----------------------------------------------------------------------


@pytest.fixture
def engine(nano_tokenizer):
    return FakeEngine(nano_tokenizer, grader, max_model_len=4096)


@pytest.fixture
def client(engine):
    with make_client(engine, judge="rubric-criterion") as c:
        yield c


def post(client, items, **body):
    r = client.post("/score", json={"items": items, **body})
    assert r.status_code == 200, r.text
    return r.json()["results"]


def test_one_judgment_per_criterion_combined_by_rule(client, engine):
    [r] = post(client, [{"question": "How many apples?", "response": "42 apples", "rubric": RUBRIC}])
    assert (r["status"], r["reward"]) == ("ok", 1.0)
    assert [(c["id"], c["verdict"], c["reward"], c["polarity"]) for c in r["components"]] == [
        ("answer", "yes", 1.0, "positive"), ("units", "yes", 1.0, "positive"), ("rude", "no", 0.0, "negative")]
    assert len(engine.calls_of(RequestKind.judge)) == 3
    criteria = [engine.tokenizer.decode(c) for c in engine.calls_of(RequestKind.judge)]
    assert all(c.rsplit("[Criterion]\n", 1)[1].startswith("The response mentions") for c in criteria)  # last


def test_a_request_rubric_applies_to_items_without_one_and_rar_rows_are_accepted(client):
    rar = [{"title": "Answer", "description": "The response mentions 42.", "weight": 5},
           {"title": "Pitfall", "description": "The response mentions idiot.", "weight": -2, "polarity": "negative"}]
    own, shared = post(client, [{"question": "q", "response": "42, idiot", "rubric": RUBRIC},
                                {"question": "q", "response": "42, idiot"}], rubric=rar)
    assert own["reward"] == pytest.approx((5 - 2) / 8) and len(own["components"]) == 3
    assert shared["reward"] == pytest.approx((5 - 2) / 5) and [c["weight"] for c in shared["components"]] == [5, 2]


def test_an_undecided_criterion_makes_the_item_partial_with_the_rest_kept(client):
    rubric = [*RUBRIC, {"id": "odd", "text": "undecidable", "weight": 1}]
    [r] = post(client, [{"question": "q", "response": "42 apples", "rubric": rubric}], max_thinking_tokens=None)
    assert r["status"] == "partial" and r["reward"] is None
    assert "1 of 4 criteria undecided; first: criterion 'odd': unparsed" in r["message"]
    assert [c["status"] for c in r["components"]] == ["ok", "ok", "ok", "unparsed"]


def test_bad_rubrics_are_invalid_items_and_the_rest_is_judged(client, engine):
    items = [{"question": "q", "response": "42", "rubric": []},
             {"question": "q", "response": "42", "rubric": [{"text": "a", "id": "x"}, {"text": "b", "id": "x"}]},
             {"question": "q", "response": "42", "rubric": [{"text": "", "id": "blank"}]},
             {"question": "q", "response": "42"},  # no rubric here and none in the request
             {"question": "q", "response": "42", "rubric": [{"text": "t", "weight": -1}]},
             {"question": "q", "response": "42", "rubric": RUBRIC}]
    results = post(client, items)
    assert [r["status"] for r in results] == ["invalid"] * 5 + ["ok"]
    assert "empty" in results[0]["message"] and "criterion 'x': the id is used twice" in results[1]["message"]
    assert "criterion 'blank' has empty text" in results[2]["message"] and "no rubric" in results[3]["message"]
    assert "no polarity" in results[4]["message"]
    assert len(engine.calls_of(RequestKind.judge)) == 3


def test_too_many_criteria_is_invalid_and_limits_says_the_limit(engine):
    with make_client(engine, judge="rubric-criterion", max_rubric_criteria=2) as c:
        assert c.get("/limits").json()["max_rubric_criteria"] == 2
        [r] = post(c, [{"question": "q", "response": "42", "rubric": RUBRIC}])
        assert r["status"] == "invalid" and "limit is 2" in r["message"]


def test_criteria_are_cached_and_deduplicated_one_by_one(client, engine):
    post(client, [{"question": "q", "response": "42 apples", "rubric": RUBRIC}] * 2)
    assert len(engine.calls_of(RequestKind.judge)) == 3
    [r] = post(client, [{"question": "q", "response": "42 apples", "rubric": [*RUBRIC, {"text": "mentions pears"}]}])
    assert len(engine.calls_of(RequestKind.judge)) == 4 and r["cached"] is False  # only the new criterion
    assert r["reward"] == pytest.approx(8 / 9)


def test_holistic_is_one_rating_of_the_whole_list(client, engine):
    [r] = post(client, [{"question": "q", "response": "42 and 42", "rubric": RUBRIC}], rubric_strategy="holistic",
               return_prompt=True)
    assert r["status"] == "ok" and r["verdict"] == "7" and r["reward"] == pytest.approx(6 / 9)
    assert [c["status"] for c in r["components"]] == [None, None, None]
    [call] = engine.calls_of(RequestKind.judge)
    assert "2. Criterion (weight 3): The response mentions apples." in r["prompt"][0]["content"]
    assert len(call) > 0


@pytest.mark.parametrize("body, field", [
    ({"rubric_strategy": "holistic", "aggregation": "min"}, "aggregation"),
    ({"mode": "hybrid"}, "mode"),
    ({"judge": "nano", "rubric": RUBRIC}, "rubric"),
    ({"judge": "nano", "aggregation": "all", "items": [{"question": "q", "response": "42"}]}, "aggregation"),
])
def test_rubric_options_a_judge_cannot_take_are_422s(client, body, field):
    r = client.post("/score", json={"items": [{"question": "q", "response": "42", "rubric": RUBRIC}]} | body)
    assert r.status_code == 422 and r.json()["error"]["param"] == field, r.text


def test_a_rubric_item_streams_as_one_line(client):
    with client.stream("POST", "/score", json={"stream": True, "items": [
            {"question": "q", "response": "42", "rubric": RUBRIC}, {"question": "q", "response": "x", "rubric": []}]}
                       ) as r:
        lines = [json.loads(line) for line in r.iter_lines() if line]
    by_index = {x["index"]: x for x in lines[:-1]}
    assert sorted(by_index) == [0, 1] and lines[-1]["items"] == 2
    assert by_index[1]["status"] == "invalid" and by_index[0]["reward"] == pytest.approx(5 / 8)


def test_aggregation_modes_over_http(client):
    item = {"question": "q", "response": "42 only", "rubric": RUBRIC}
    got = {how: post(client, [item], aggregation=how)[0]["reward"] for how in ("weighted", "mean", "min", "all", "any")}
    assert got == pytest.approx({"weighted": 5 / 8, "mean": 2 / 3, "min": 0.0, "all": 0.0, "any": 1.0})


# -- NeMo Gym's /verify (its wire format on the real engine: tests/contracts/test_nemo_gym.py) ------------------


def gym_request(response: str, **task) -> dict:
    return {"responses_create_params": {"input": "How many apples?"},
            "response": {"output": [{"type": "message", "role": "assistant",
                                     "content": [{"type": "output_text", "text": response}]}]}, **task}


def test_verify_gives_the_reward_and_one_component_per_criterion(client):
    r = client.post("/verify", json=gym_request("<think>hm</think>42 apples", rubric=RUBRIC, episode=7))
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["reward"] == 1.0 and got["reward_components"] == {"answer": 1.0, "units": 1.0, "rude": 0.0}
    assert got["episode"] == 7 and "_ng_failure_class" not in got


def test_verify_marks_an_undecided_rubric_as_a_judge_failure(client):
    got = client.post("/verify", json=gym_request("42", rubric=[*RUBRIC, {"text": "undecidable"}])).json()
    assert got["reward"] == 0.0 and got["_ng_failure_class"] == "judge_failed"
    assert got["_ng_failure_judge_error"].startswith("partial: 1 of 4 criteria undecided")
    assert got["reward_components"]["criterion_3"] == 0.0 and got["reward_components"]["answer"] == 1.0


def test_verify_pays_a_refused_response_nothing_without_calling_it_a_failure(client):
    got = client.post("/verify", json=gym_request("apples " * 300, rubric=RUBRIC)).json()
    assert got["reward"] == 0.0 and "_ng_failure_class" not in got and got["libra"]["status"] == "degenerate"


def test_verls_reward_manager_gets_the_rubrics_parts_as_keys_every_sample_has(engine, monkeypatch):
    """verl's naive reward manager through our adapter: the rubric rides in extra_info (as RaR's data keeps it);
    the parts come back as keys that every sample has, rubric or not (verl reads the first sample's keys)."""
    import importlib

    from loadtest.verl_calls import naive_manager
    from tests.helpers import AppServer, build_app_for

    with AppServer(build_app_for(engine, judge="rubric-criterion")) as server:
        monkeypatch.setenv("LIBRA_URL", server.url)
        verl = importlib.reload(importlib.import_module("libra_client.verl"))
        rows = [("rar", "42 apples, idiot", None, {"question": "How many apples?", "rubric": RUBRIC}),
                ("rar", "no idea", None, {"question": "How many apples?", "rubric": [{**RUBRIC[0], "veto": True}]}),
                ("rar", "42", None, {"question": "How many apples?"})]
        rewards, extra = naive_manager(verl.compute_score, rows)
    assert rewards == pytest.approx([(5 + 3 - 2) / 8, 0.0, 0.0])
    assert extra["rubric_met"] == pytest.approx([2 / 3, 0.0, 0.0]) and extra["rubric_pitfalls"] == [1.0, 0.0, 0.0]
    assert extra["rubric_veto_failed"] == [0.0, 1.0, 0.0] and extra["judge_status"] == ["ok", "ok", "invalid"]
