"""The HTTP API on a FakeEngine: contract, order, statuses, and the error envelope."""

import pytest

from service.engine.fake import FakeEngine
from tests.helpers import make_client, perfect_nano_judge, working


def test_score_returns_one_result_per_item_in_order(engine):
    items = [
        {"id": "right", "question": "What is 347 + 58?", "response": "347 + 58 = 405."},
        {"question": "What is 347 + 58?", "response": "347 + 58 = 415."},
        {"id": "sub", "question": "Compute 900 - 1.", "response": "The answer is 899."},
    ]
    with make_client(engine) as client:
        resp = client.post("/score", json={"items": items})
    assert resp.status_code == 200
    body = resp.json()
    assert body["model"] == "fake-nano" and body["judge"] == "nano"
    assert [(r["id"], r["index"], r["status"], r["verdict"], r["reward"]) for r in body["results"]] == [
        ("right", 0, "ok", "correct", 1.0),
        (None, 1, "ok", "incorrect", 0.0),
        ("sub", 2, "ok", "correct", 1.0),
    ]
    assert engine.judge_calls() == 3


def test_unparsed_and_forced_statuses(nano_tokenizer):
    def reply(prompt, _i):
        return "<think>hmm</think>\nno idea" if "Question: q1" in prompt else "<think>" + "1" * 500

    engine = FakeEngine(nano_tokenizer, reply, max_model_len=1024)
    with make_client(engine) as client:
        results = client.post("/score", json={"items": [
            {"question": "q1", "response": "r = 3"}, {"question": "q2", "response": "r = 3"}]}).json()["results"]
    assert [(r["status"], r["reward"], r["verdict"]) for r in results] == [
        ("unparsed", None, None), ("forced", 1.0, "correct")]
    assert all(r["message"] for r in results)


def test_overlong_response_is_shortened_and_says_so(engine):
    with make_client(engine) as client:
        results = client.post("/score", json={"items": [
            {"question": "What is 1 + 1?", "response": working(150) + "\nSo 1 + 1 = 2."},
            {"question": "What is 1 + 1?", "response": "2."}],
        }).json()["results"]
    assert results[0]["truncated_input"] is True and results[0]["status"] == "ok"
    assert results[1]["truncated_input"] is False


def test_judges_lists_profiles_and_requests_can_pick_one(engine):
    with make_client(engine) as client:
        listing = client.get("/judges").json()
        assert listing["default"] == "nano"
        names = {j["name"] for j in listing["judges"]}
        assert {"libra", "libra-ref", "xverify", "general-verifier", "j1-pointwise", "nano"} <= names
        resp = client.post("/score", json={"judge": "xverify", "items": [{"question": "q", "response": "r"}]})
        assert resp.json()["judge"] == "xverify"
        assert resp.json()["results"][0]["status"] == "invalid"  # xverify needs a reference
        resp = client.post("/score", json={"judge": "nope", "items": [{"question": "q", "response": "r"}]})
        assert resp.status_code == 422 and resp.json()["error"]["param"] == "judge"


@pytest.mark.parametrize(
    "extra, param",
    [
        pytest.param({"samples": 3, "temperature": 0}, "temperature", id="samples-with-explicit-greedy"),
        pytest.param({"samples": 99, "temperature": 1.0}, "samples", id="too-many-samples"),
        pytest.param({"samples": 0}, "samples", id="zero-samples"),
        pytest.param({"max_thinking_tokens": 0}, "max_thinking_tokens", id="zero-budget"),
        pytest.param({"max_thinking_tokens": 10**6}, "max_thinking_tokens", id="budget-over-max-tokens"),
        pytest.param({"temperature": -1}, "temperature", id="negative-temperature"),
    ],
)
def test_bad_options_are_422(engine, extra, param):
    with make_client(engine) as client:
        resp = client.post("/score", json={"items": [{"question": "q", "response": "r"}], **extra})
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["param"] == param


@pytest.mark.parametrize(
    "body, param",
    [
        pytest.param({"items": [{"response": "r"}]}, "items.0.question", id="missing-question"),
        pytest.param({"items": [{"question": "q"}]}, "items.0.response", id="missing-response"),
        pytest.param({"items": [{"question": 3, "response": "r"}]}, "items.0.question", id="wrong-type"),
        pytest.param({"items": []}, "items", id="empty-items"),
        pytest.param({"items": "nope"}, "items", id="items-not-a-list"),
        pytest.param({}, "items", id="no-items"),
        pytest.param({"items": [{"question": "q", "response": "r", "extra": 1}]}, "items.0.extra", id="unknown-field"),
    ],
)
def test_bad_input_is_422_in_the_envelope_naming_the_field(engine, body, param):
    with make_client(engine) as client:
        resp = client.post("/score", json=body)
        assert resp.status_code == 422
        error = resp.json()["error"]
        assert error["code"] == "invalid_request"
        assert error["param"] == param
        assert param in error["message"]
        assert client.get("/health").status_code == 200  # and the service keeps serving


def test_invalid_json_is_400_in_the_envelope(engine):
    with make_client(engine) as client:
        resp = client.post("/score", content=b"{not json", headers={"content-type": "application/json"})
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "invalid_json"


def test_too_many_items_is_rejected(engine):
    with make_client(engine, max_items_per_request=2) as client:
        resp = client.post("/score", json={"items": [{"question": "q", "response": "r"}] * 3})
    assert resp.status_code == 422
    assert resp.json()["error"]["param"] == "items"


def test_health_reports_a_dead_engine_as_503(engine):
    with make_client(engine) as client:
        assert client.get("/health").json() == {"status": "ok"}
        engine.dead = True
        resp = client.get("/health")
        assert resp.status_code == 503
        assert resp.json()["error"]["code"] == "engine_unavailable"
        resp = client.post("/score", json={"items": [{"question": "What is 1 + 1?", "response": "2."}]})
        assert resp.status_code == 503


def test_unknown_route_uses_the_envelope(engine):
    with make_client(engine) as client:
        resp = client.get("/nope")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"


def test_openapi_documents_the_contract(engine):
    with make_client(engine) as client:
        spec = client.get("/openapi.json").json()
    responses = spec["paths"]["/score"]["post"]["responses"]
    for status in ("400", "401", "413", "415", "422", "429", "503"):
        assert responses[status]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorEnvelope")
    schemas = spec["components"]["schemas"]
    assert schemas["ScoreRequest"]["examples"]
    assert "timeout" in schemas["ItemStatus"]["enum"] and "forced" in schemas["ItemStatus"]["enum"]
    assert all(p.get("description") for p in schemas["ScoreResult"]["properties"].values() if "$ref" not in p)


def test_seed_is_refused_where_the_engine_cannot_honour_it(nano_tokenizer):
    item = {"question": "What is 1 + 1?", "response": "2."}
    cpu = FakeEngine(nano_tokenizer, perfect_nano_judge, max_model_len=1024, seeded_sampling=False)
    with make_client(cpu) as client:
        resp = client.post("/score", json={"items": [item], "samples": 2, "temperature": 1.0, "seed": 3})
        assert resp.status_code == 422
        assert resp.json()["error"]["param"] == "seed" and "CPU" in resp.json()["error"]["message"]
        assert all(spec.seed is None for spec in cpu.specs)  # nothing seeded reached the engine
        assert client.post("/score", json={"items": [item]}).status_code == 200
    gpu = FakeEngine(nano_tokenizer, perfect_nano_judge, max_model_len=1024)
    with make_client(gpu) as client:
        resp = client.post("/score", json={"items": [item], "samples": 2, "temperature": 1.0, "seed": 3})
        assert resp.status_code == 200 and any(spec.seed == 3 for spec in gpu.specs)


def test_judges_names_the_model(engine):
    with make_client(engine) as client:
        assert client.get("/judges").json()["model"] == "fake-nano"


def test_outputs_and_prompt_over_http(engine):
    with make_client(engine) as client:
        body = client.post("/score", json={"items": [{"question": "What is 347 + 58?", "response": "347 + 58 = 415."}],
                                           "return_reasoning": True, "return_prompt": True}).json()
    [r] = body["results"]
    assert r["outputs"] == [{"text": r["outputs"][0]["text"], "verdict": "incorrect", "status": "ok"}]
    assert r["outputs"][0]["text"].startswith("<think>") and r["reasoning"][0] in r["outputs"][0]["text"]
    assert r["prompt"][0]["role"] == "user" and "Response: 347 + 58 = 415." in r["prompt"][0]["content"]
