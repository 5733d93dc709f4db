"""What the OpenAPI document promises about statuses, checked on a FakeEngine; the live server is
fuzzed against the same document in tests/integration/test_api_fuzz.py."""

from __future__ import annotations

import pytest

from tests.helpers import make_client

SCORING = {"400", "401", "413", "415", "422", "429", "503"}
DOCUMENTED = {  # (method, path) -> the error statuses its OpenAPI entry must list, each with the envelope
    ("post", "/score"): SCORING,
    ("post", "/get_reward"): SCORING,
    ("post", "/slime/reward"): SCORING,
    ("post", "/slime/reward/value"): SCORING,
    ("post", "/verify"): SCORING,
    ("post", "/seed_session"): {"401"},
    ("get", "/judges"): {"401"},
    ("get", "/limits"): {"401"},
    ("get", "/version"): {"401"},
    ("get", "/health"): {"503"},
    ("get", "/ready"): {"503"},
}


@pytest.fixture
def spec(engine):
    with make_client(engine) as client:
        return client.get("/openapi.json").json()


def test_every_operation_documents_its_error_statuses_with_the_envelope(spec):
    operations = {(method, path): op for path, ops in spec["paths"].items() for method, op in ops.items()}
    assert set(operations) == set(DOCUMENTED)
    for key, statuses in DOCUMENTED.items():
        responses = operations[key]["responses"]
        assert set(responses) - {"200"} == statuses, key
        for status in statuses:
            assert responses[status]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorEnvelope")


def test_405_carries_allow_with_the_paths_methods(engine, spec):
    """RFC 9110: a 405 lists the methods the resource supports."""
    with make_client(engine) as client:
        for path, ops in spec["paths"].items():
            documented = {m.upper() for m in ops}
            for method in {"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "HEAD"} - documented:
                resp = client.request(method, path)
                assert resp.status_code == 405, (method, path)
                assert resp.headers["allow"] == ", ".join(sorted(documented)), (method, path)
                if method != "HEAD":
                    assert resp.json()["error"]["code"] == "method_not_allowed"
        # The docs routes are Starlette's: GET and HEAD.
        assert client.post("/openapi.json").headers["allow"] == "GET, HEAD"
