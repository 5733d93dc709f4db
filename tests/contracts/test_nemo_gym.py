"""A NeMo Gym agent using the service as its resource server, against the live service (the real engine), as
NeMo Gym's source shows the calls. NeMo Gym is not on PyPI; these reproduce its requests and what it reads.

Facts from NVIDIA-NeMo/Gym @ 07d6b0d07b22fcf530b4c211dae2ee23100428e4; our own code:
- ``responses_api_agents/simple_agent/app.py`` (~L278-341): ``POST /seed_session``, then ``POST /verify`` with
  ``verify_request.model_dump()`` as JSON and the session's cookies; ``nemo_gym/server_utils.py``: the URL is
  ``http://{host}:{port}`` + ``/verify``.
- ``nemo_gym/base_resources_server.py`` L88-113: the request is ``responses_create_params`` (a Responses API
  request; ``input`` a string or messages) and ``response`` (a Responses API object, its ``output`` items:
  reasoning, then the assistant ``message`` with ``output_text`` parts), plus task fields; the answer is the
  request with ``reward`` (a float), and a multi-reward one ``reward_components: dict[str, float]``.
- ``judge_failsafe`` (base_resources_server.py:143): a judge failure answers ``reward`` 0.0 with
  ``_ng_failure_class: "judge_failed"`` and ``_ng_failure_judge_error``; NeMo Gym keeps such rows out of its
  metrics and retries them on resume.
"""

from __future__ import annotations

import httpx
import pytest

from tests.nemo_gym_calls import agent_verify, verify_request

pytestmark = pytest.mark.integration


def test_a_rollout_gets_the_judges_reward_with_the_request_echoed(live_server):
    right = verify_request("What is 347 + 58?", "347 + 58 = 405. The answer is 405.", task_id="t1")
    wrong = verify_request("What is 347 + 58?", "347 + 58 = 415. The answer is 415.", task_id="t2")
    got_right, got_wrong = agent_verify(live_server.url, right), agent_verify(live_server.url, wrong)
    assert (got_right["reward"], got_wrong["reward"]) == (1.0, 0.0)
    assert got_right["reward_components"] == {"judge": 1.0} and isinstance(got_right["reward"], float)
    assert got_right["task_id"] == "t1" and got_right["response"] == right["response"]  # echoed, as NeMo Gym does
    assert got_right["responses_create_params"]["max_output_tokens"] == 512
    assert "_ng_failure_class" not in got_right and got_right["libra"]["status"] == "ok"


def test_a_rubric_the_judge_cannot_judge_is_a_judge_failure_not_a_zero(live_server):
    """The nano judge cannot grade this rubric: the grader's output budgets do not fit its 1,024-token context
    (too_long), and where they would, it answers in its own format, never [[YES]]/[[NO]] (partial). Either way
    NeMo Gym is told the judge failed, with our status, and retries: not paid 0."""
    rubric = [{"id": "sum", "text": "The response states that the sum is 405.", "weight": 5},
              {"id": "work", "text": "The response shows the column addition.", "weight": 1}]
    body = verify_request("What is 347 + 58?", "347 + 58 = 405. The answer is 405.", rubric=rubric,
                          judge="rubric-criterion")
    got = agent_verify(live_server.url, body)
    assert got["reward"] == 0.0 and got["_ng_failure_class"] == "judge_failed"
    status = got["libra"]["status"]
    assert status in ("too_long", "partial") and got["_ng_failure_judge_error"].startswith(f"{status}: ")
    assert set(got["reward_components"]) == {"sum", "work"} and got["rubric"][0]["id"] == "sum"


def test_bad_input_is_a_422_in_the_envelope(live_server):
    body = verify_request("What is 1 + 1?", "2")
    body["response"]["output"] = [body["response"]["output"][0]]  # reasoning only: no message to judge
    r = httpx.post(f"{live_server.url}/verify", json=body, timeout=60)
    assert r.status_code == 422 and r.json()["error"]["param"] == "response.output"
    r = httpx.post(f"{live_server.url}/verify", json={"response": {}}, timeout=60)
    assert r.status_code == 422 and r.json()["error"]["param"] == "responses_create_params"
