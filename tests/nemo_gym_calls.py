"""NeMo Gym's agent calls to a resource server, as its source makes them (NVIDIA-NeMo/Gym @ 07d6b0d0:
tests/contracts/test_nemo_gym.py cites the files), for the tests that replay them."""

from __future__ import annotations

import httpx


def verify_request(question: str, answer_text: str, **task) -> dict:
    """What NeMo Gym's simple agent posts: the policy's request and its Responses API answer, as dumped."""
    return {
        "responses_create_params": {"input": [{"role": "user", "content": question, "type": "message"}],
                                    "temperature": 1.0, "max_output_tokens": 512},
        "response": {
            "id": "resp_1", "created_at": 1765000000.0, "model": "policy", "object": "response",
            "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
            "output": [
                {"id": "rs_1", "type": "reasoning", "summary": [{"type": "summary_text", "text": "adding"}]},
                {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
                 "content": [{"type": "output_text", "text": f"<think>column by column</think>{answer_text}",
                              "annotations": []}]},
            ],
        },
        **task,
    }


def agent_verify(url: str, body: dict) -> dict:
    """The agent's two calls, the cookies carried from the first to the second."""
    with httpx.Client(base_url=url, timeout=300) as client:
        seeded = client.post("/seed_session", json={})
        assert seeded.status_code == 200
        r = client.post("/verify", json=body, cookies=seeded.cookies)
    assert r.status_code == 200, r.text
    return r.json()
