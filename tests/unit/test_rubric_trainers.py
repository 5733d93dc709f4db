"""A rubric judge behind the trainers' own routes and adapters, on the FakeEngine grader of test_rubric.py:
OpenRLHF's /get_reward (each query's label is its rubric; extra_logs gains the rubric's numbers), slime's
/slime/reward (its dict gains them and each criterion's reward), TRL's reward function (a ``rubric`` column;
per-criterion metrics). The real engine: tests/integration/test_rubric_nano_live.py."""

from __future__ import annotations

import asyncio
import json

import pytest

from service.api.trainer_protocol import rubric_of
from service.engine.base import RequestKind
from service.engine.fake import FakeEngine
from tests.helpers import AppServer, build_app_for, make_client
from tests.rubric_support import RUBRIC, grader

QUESTION = "How many apples?"


@pytest.fixture
def engine(nano_tokenizer):
    return FakeEngine(nano_tokenizer, grader, max_model_len=4096)


@pytest.fixture
def client(engine):
    with make_client(engine, judge="rubric-criterion") as c:
        yield c


def get_reward(client, responses, labels, **params):
    r = client.post("/get_reward", params=params, json={
        "query": [QUESTION + r for r in responses], "prompts": [QUESTION] * len(responses), "labels": labels})
    assert r.status_code == 200, r.text
    return r.json()


def test_openrlhf_reads_each_rubric_from_its_label_and_logs_its_parts(client, engine):
    got = get_reward(client, ["42 apples", "42, idiot", "42", "42"],
                     [RUBRIC, json.dumps(RUBRIC), "42", [{"text": "", "id": "blank"}]])
    assert got["rewards"] == pytest.approx([1.0, 3 / 8, 0.0, 0.0])  # the last two: LIBRA_FAILURE_REWARD
    logs = got["extra_logs"]
    assert set(logs) == {"judge_failed", "judge_forced", "rubric_met", "rubric_pitfalls", "rubric_veto_failed"}
    assert logs["judge_failed"] == [0.0, 0.0, 1.0, 1.0]
    assert logs["rubric_met"] == pytest.approx([1.0, 1 / 3, 0.0, 0.0]) and logs["rubric_pitfalls"] == [0, 1, 0, 0]
    assert len(engine.calls_of(RequestKind.judge)) == 6  # the refused labels cost no judgment


def test_a_label_that_is_no_rubric_says_why():
    assert rubric_of("42") == "the label is not a rubric: Input should be a valid list"
    assert "criterion 0: give text" in rubric_of([{"weight": 2}])
    assert "a JSON list of criteria" in rubric_of("{not json")
    assert "no label" in rubric_of(None)
    assert [c.id for c in rubric_of(json.dumps(RUBRIC))] == ["answer", "units", "rude"]


def test_a_rubric_label_for_a_judge_without_rubrics_is_a_422_naming_it(engine):
    with make_client(engine) as c:  # the default judge (nano) takes references, not rubrics
        r = c.post("/get_reward", json={"query": ["q 4"], "labels": [RUBRIC]})
        assert r.status_code == 422 and r.json()["error"]["param"] == "labels.0", r.text
        r = c.post("/slime/reward", json={"prompt": "q", "response": "4", "label": RUBRIC})
        assert r.status_code == 422 and r.json()["error"]["param"] == "label", r.text


def test_slime_gets_the_parts_in_its_dict_and_the_number_alone(client):
    body = {"prompt": QUESTION, "response": "42, idiot", "label": RUBRIC}
    got = client.post("/slime/reward", json=body).json()
    assert got["reward"] == pytest.approx(3 / 8) and got["failed"] is False
    assert got["criteria_met"] == {"answer": 1.0, "units": 0.0, "rude": 0.0}  # the pitfall was committed
    assert (got["rubric_met"], got["rubric_pitfalls"], got["rubric_veto_failed"]) == pytest.approx((1 / 3, 1.0, 0.0))
    assert client.post("/slime/reward/value", json=body).json() == pytest.approx(3 / 8)
    bad = client.post("/slime/reward", json={**body, "label": "just text"}).json()
    assert bad["failed"] is True and bad["status"] == "invalid" and "not a rubric" in bad["message"]


def test_trl_takes_a_rubric_column_and_logs_each_criterion(engine, fresh_env):
    """A ``rubric`` column as a datasets table gives it back: every criterion with every key of the column's
    struct, absent ones None (they are dropped), or the rubric as JSON text."""
    from libra_client import trl

    arrow_row = [{"id": c["id"], "text": c["text"], "weight": c["weight"], "polarity": c.get("polarity"),
                  "veto": None, "title": None} for c in RUBRIC]
    logged: dict[str, float] = {}
    with AppServer(build_app_for(engine, judge="rubric-criterion")) as server:
        fresh_env.setenv("LIBRA_URL", server.url)
        rewards = asyncio.run(trl.libra_reward(
            prompts=[QUESTION] * 3, completions=["42 apples", "42, idiot", "no idea"],
            rubric=[arrow_row, json.dumps(RUBRIC), arrow_row], log_metric=lambda k, v: logged.__setitem__(k, v)))
    assert rewards == pytest.approx([1.0, 3 / 8, 0.0])
    assert logged["libra/criterion/answer"] == pytest.approx(2 / 3)
    assert logged["libra/criterion/units"] == pytest.approx(1 / 3)
    assert logged["libra/criterion/rude"] == pytest.approx(2 / 3)  # avoided by two of three
    assert logged["libra/rubric_veto_failed"] == 0.0 and logged["libra/failed"] == 0.0


def test_openrlhf_logs_the_criteria_it_is_told_by_name(client):
    got = get_reward(client, ["42 apples", "42, idiot"], [RUBRIC, RUBRIC[:2]], log_criteria="answer,rude")
    logs = got["extra_logs"]
    assert logs["criterion/answer"] == [1.0, 1.0] and logs["criterion/rude"] == [1.0, 0.0]  # absent: 0.0
    for params in ({"log_criteria": " , "}, {"log_criteria": "answer", "judge": "nano"}):
        r = client.post("/get_reward", params=params, json={"query": ["q 42"], "labels": [RUBRIC]})
        assert r.status_code == 422 and r.json()["error"]["param"] == "log_criteria", r.text


def test_slimes_log_functions_log_the_means_at_slimes_step(client, monkeypatch):
    """Our functions as slime's log_rollout_data calls them (THUDM/slime 624b824,
    slime/observability/rollout_metrics.py), with the dicts /slime/reward answered in ``sample.reward``.
    slime itself is not installable here: its two helpers are stood in for, with their signatures."""
    import sys
    import types
    from types import SimpleNamespace

    from libra_client import slime

    logged = []
    utils = types.ModuleType("slime.observability.logging_utils")
    utils.log = lambda args, metrics, step_key: logged.append((metrics, step_key))
    metric_utils = types.ModuleType("slime.observability.metric_utils")
    metric_utils.compute_rollout_step = lambda args, rollout_id: rollout_id * 10
    observability = types.ModuleType("slime.observability")
    observability.logging_utils = utils
    for name, module in {"slime": types.ModuleType("slime"), "slime.observability": observability,
                         "slime.observability.logging_utils": utils,
                         "slime.observability.metric_utils": metric_utils}.items():
        monkeypatch.setitem(sys.modules, name, module)
    bodies = [("42 apples", RUBRIC), ("42, idiot", RUBRIC), ("42", "not a rubric")]
    samples = [SimpleNamespace(reward=client.post("/slime/reward", json={
        "prompt": QUESTION, "response": resp, "label": label}).json()) for resp, label in bodies]
    assert slime.log_rollout_data(3, SimpleNamespace(), samples, {}, 1.0) is False
    [(metrics, step_key)] = logged
    assert step_key == "rollout/step" and metrics["rollout/step"] == 30
    assert metrics["rollout/libra/failed"] == pytest.approx(1 / 3)
    assert metrics["rollout/libra/criterion/units"] == pytest.approx(1 / 2)  # of the two decided
    assert metrics["rollout/libra/criterion/rude"] == pytest.approx(1 / 2)
    assert metrics["rollout/libra/rubric_pitfalls"] == pytest.approx(1 / 2)  # over the samples judged on a rubric
    assert slime.log_eval_rollout_data(3, SimpleNamespace(), {"rar": {"rewards": [0], "samples": samples}}) is False
    assert logged[1][0]["eval/rar/libra/criterion/answer"] == 1.0 and logged[1][1] == "eval/step"
    assert slime.log_rollout_data(4, SimpleNamespace(), [SimpleNamespace(reward=1.0)], {}, 1.0) is False
    assert len(logged) == 2  # numbers alone (value_only, another reward model): nothing of ours to log
