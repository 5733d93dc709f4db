"""The trainer endpoints as trainers call them: numeric labels, uneven shards, their own deadline.

OpenRLHF and slime send ``data[label_key]`` unconverted (math data sets store integer answers);
OpenRLHF takes ``extra_logs``' keys from its first shard and indexes every shard with them; slime's
client gives up at 120 s and OpenRLHF's at 180 s.
"""

from __future__ import annotations

import pytest

from service.engine.fake import FakeEngine
from tests.helpers import make_client, perfect_nano_judge

CHATML = "<|im_start|>user\nWhat is 347 + 58?<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize(("reference", "shown"), [
    (42, "42"), (0.5, "0.5"), (42.0, "42"), (-3, "-3"), (1e-7, "1e-07"), (True, "true"), (False, "false"),
    ("405", "405"),
])
def test_a_reference_may_be_any_json_scalar(engine, reference, shown):
    item = {"question": "What is 347 + 58?", "response": "405", "reference": reference}
    with make_client(engine) as client:
        resp = client.post("/score", json={"judge": "libra-ref", "items": [item], "return_prompt": True})
    assert resp.status_code == 200, resp.text
    [r] = resp.json()["results"]
    assert f"## Reference answer\n{shown}\n" in r["prompt"][0]["content"]


@pytest.mark.parametrize("reference", [[1, 2], {"a": 1}])
def test_a_reference_that_is_not_a_scalar_is_refused_by_name(engine, reference):
    item = {"question": "q", "response": "r", "reference": reference}
    with make_client(engine) as client:
        resp = client.post("/score", json={"items": [item]})
    assert resp.status_code == 422 and resp.json()["error"]["param"] == "items.0.reference"


def test_openrlhf_numeric_labels_and_an_empty_shard_keep_every_key(engine):
    queries = [CHATML + "347 + 58 = 405.<|im_end|>", CHATML + "347 + 58 = 415.<|im_end|>", CHATML + "405"]
    with make_client(engine) as client:
        full = client.post("/get_reward", json={"query": queries, "prompts": [CHATML] * 3,
                                                "labels": [405, 405.0, None]})
        empty = client.post("/get_reward", json={"query": [], "prompts": [], "labels": []})
    assert full.status_code == 200, full.text
    assert full.json()["rewards"] == [1.0, 0.0, 1.0]
    assert empty.status_code == 200
    assert set(empty.json()["extra_logs"]) == set(full.json()["extra_logs"]) == {"judge_failed", "judge_forced"}
    assert empty.json() == {"rewards": [], "scores": [], "extra_logs": {"judge_failed": [], "judge_forced": []}}


def test_slime_numeric_label(engine):
    with make_client(engine) as client:
        resp = client.post("/slime/reward", json={"prompt": CHATML, "response": "347 + 58 = 405.", "label": 405})
    assert resp.status_code == 200 and resp.json()["reward"] == 1.0


def test_trainer_endpoints_answer_within_their_own_deadline(nano_tokenizer):
    """Past ``trainer_timeout_s`` an item gets the failure reward, flagged as failed, in time for the client."""
    slow = FakeEngine(nano_tokenizer, perfect_nano_judge, max_model_len=1024, delay_s=2.0)
    with make_client(slow, trainer_timeout_s=0.3, failure_reward=-1.0) as client:
        assert client.get("/limits").json()["trainer_timeout_s"] == 0.3
        body = client.post("/get_reward", json={"query": [CHATML + "405"], "prompts": [CHATML]}).json()
        assert body["rewards"] == [-1.0] and body["extra_logs"]["judge_failed"] == [1.0]
        slime = client.post("/slime/reward", json={"prompt": CHATML, "response": "405"}).json()
        assert (slime["reward"], slime["failed"], slime["status"]) == (-1.0, True, "timeout")


@pytest.mark.parametrize("question", ["", "   \n"])
def test_an_empty_question_is_an_invalid_item_not_a_silent_zero(engine, question):
    with make_client(engine) as client:
        results = client.post("/score", json={"items": [
            {"question": question, "response": "347 + 58 = 405."},
            {"question": "What is 347 + 58?", "response": "347 + 58 = 405."}]}).json()["results"]
    assert [r["status"] for r in results] == ["invalid", "ok"]
    assert "question is empty" in results[0]["message"] and results[0]["reward"] is None
