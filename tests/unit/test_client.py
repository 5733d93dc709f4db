"""libra_client's shape: plain and streamed requests share one attempt loop (so they retry alike), the
blocking client keeps one pool and one loop for its life (and works where a loop already runs), and the
adapters share one client per process, remade after a fork."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from libra_client import AsyncLibraClient, LibraClient, RequestRejected
from libra_client import env as libra_env

ITEMS = [{"id": f"i{i}", "question": "What is 2 + 2?", "response": "4" if i % 2 else "5"} for i in range(3)]


def answer(request: httpx.Request) -> httpx.Response:
    """The server's answer to a plain or a streamed /score (one NDJSON line per item, then the final line)."""
    body = json.loads(request.content)
    # A response "status:S" comes back with status S and no reward (as the reward policy's refusals do).
    results = [{"id": it.get("id"), "index": i, "status": "ok", "reward": float(it["response"] == "4"),
                "verdict": "x"} if not it["response"].startswith("status:") else
               {"id": it.get("id"), "index": i, "status": it["response"][7:], "reward": None, "verdict": None}
               for i, it in enumerate(body["items"])]
    if not body.get("stream"):
        return httpx.Response(200, json={"results": results, "model": "m", "judge": "j"})
    lines = [json.dumps(r) for r in results] + [json.dumps({"done": True})]
    return httpx.Response(200, headers={"content-type": "application/x-ndjson"},
                          content="\n".join(lines).encode() + b"\n")


def scripted(script: dict[str, list]) -> tuple[httpx.MockTransport, list[str]]:
    """Each host answers its script in order, then repeats the last step; ``answer`` steps are callables."""
    calls: list[str] = []
    script = {host: list(steps) for host, steps in script.items()}

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.host)
        steps = script[request.url.host]
        step = steps.pop(0) if len(steps) > 1 else steps[0]
        if isinstance(step, Exception):
            raise step
        return step(request) if callable(step) else step

    return httpx.MockTransport(handler), calls


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    slept: list[float] = []

    async def fake_sleep(s):
        slept.append(s)

    monkeypatch.setattr("libra_client.client.asyncio.sleep", fake_sleep)
    monkeypatch.setattr("libra_client.client.random.random", lambda: 0.5)  # jitter factor 0.75
    return slept


async def plain_and_stream(script, sleeps, urls=("http://a",), **kwargs) -> dict[str, tuple]:
    """Run the same script through ``score`` and ``score_stream``: (outcome, hosts called, sleeps) each."""
    out = {}
    for kind in ("plain", "stream"):
        mock, calls = scripted(script)
        sleeps.clear()
        async with AsyncLibraClient(list(urls), transport=mock, **kwargs) as client:
            try:
                if kind == "plain":
                    results = await client.score(ITEMS)
                else:
                    results = sorted([r async for r in client.score_stream(ITEMS)], key=lambda r: r.index)
                outcome = [(r.index, r.status, r.reward) for r in results]
            except (RequestRejected, RuntimeError) as exc:
                outcome = type(exc)
            downs = [r.down_until > 0 for r in client.replicas]
        out[kind] = (outcome, calls, list(sleeps), downs)
    return out


SUCCESS = [(0, "ok", 0.0), (1, "ok", 1.0), (2, "ok", 0.0)]


async def test_plain_and_stream_wait_the_same_retry_after_on_429_and_503(sleeps):
    script = {"a": [httpx.Response(429, headers={"Retry-After": "7"}, json={"error": {}}),
                    httpx.Response(503, headers={"Retry-After": "2"}, json={"error": {}}), answer]}
    both = await plain_and_stream(script, sleeps, backoff_base_s=0.01)
    assert both["plain"] == both["stream"]
    outcome, calls, slept, downs = both["plain"]
    assert outcome == SUCCESS and calls == ["a"] * 3
    assert slept == [7.0, 2.0]  # the server's wait, longer than the backoff
    assert downs == [True]  # the 503 took it out; a 429 alone would not have


async def test_plain_and_stream_back_off_past_a_short_retry_after(sleeps):
    script = {"a": [httpx.Response(503, headers={"Retry-After": "0"}, json={"error": {}}), answer]}
    both = await plain_and_stream(script, sleeps, backoff_base_s=4.0)
    assert both["plain"] == both["stream"] and both["plain"][2] == [3.0]  # 4.0 * 2**0 * 0.75


async def test_plain_and_stream_fail_over_the_same_way(sleeps):
    script = {"a": [httpx.ConnectError("refused")], "b": [answer]}
    both = await plain_and_stream(script, sleeps, urls=("http://a", "http://b"))
    assert both["plain"] == both["stream"]
    outcome, calls, slept, downs = both["plain"]
    assert outcome == SUCCESS and calls == ["a", "b"]
    assert slept == [0] and downs == [True, False]  # b was up: no wait before trying it


async def test_a_429_does_not_take_a_replica_out(sleeps):
    script = {"a": [httpx.Response(429, headers={"Retry-After": "1"}, json={"error": {}}), answer]}
    both = await plain_and_stream(script, sleeps)
    assert both["plain"] == both["stream"] and both["plain"][3] == [False]


async def test_plain_and_stream_give_up_after_the_same_attempts(sleeps):
    script = {"a": [httpx.Response(502, json={"error": {}})]}
    both = await plain_and_stream(script, sleeps, max_retries=2, backoff_base_s=1.0)
    assert both["plain"][1:] == both["stream"][1:]
    assert both["plain"][1] == ["a"] * 3 and both["plain"][2] == [0.75, 1.5, 3.0]
    assert [s for _, s, _ in both["plain"][0]] == ["client_error"] * 3  # plain: typed errors per item
    assert both["stream"][0] is RuntimeError  # stream: nothing to attach them to


async def test_plain_and_stream_do_not_retry_a_4xx(sleeps):
    script = {"a": [httpx.Response(422, json={"error": {"message": "bad"}})]}
    both = await plain_and_stream(script, sleeps)
    assert both["plain"] == both["stream"] == (RequestRejected, ["a"], [], [False])


async def test_a_stream_closed_early_releases_its_replica_at_once():
    mock, _ = scripted({"a": [answer]})
    async with AsyncLibraClient("http://a", transport=mock) as client:
        async with contextlib.aclosing(client.score_stream(ITEMS)) as stream:
            async for _ in stream:
                assert client.replicas[0].outstanding == 1
                break
        assert client.replicas[0].outstanding == 0


class _Server:
    """A real HTTP/1.1 keep-alive server on a free port that answers /score plainly, counting TCP
    connections (a reused pool opens one)."""

    def __init__(self):
        outer = self
        self.connections = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                outer.connections += 1
                super().setup()

            def do_POST(self):  # noqa: N802 - http.server's name
                request = httpx.Request("POST", "http://x/score", content=self.rfile.read(
                    int(self.headers["Content-Length"])))
                body = answer(request).content
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    with _Server() as s:
        yield s


def test_the_blocking_client_keeps_one_pool_across_calls(server):
    with LibraClient(server.url) as client:
        pool = client._async._http
        for _ in range(3):
            assert [r.reward for r in client.score(ITEMS)] == [0.0, 1.0, 0.0]
        assert [r.index for r in client.score_stream(ITEMS[:0])] == []
        assert client._async._http is pool and not pool.is_closed
    assert server.connections == 1 and pool.is_closed


def test_the_blocking_client_keeps_replica_cooldowns_across_calls(sleeps):
    mock, calls = scripted({"a": [httpx.ConnectError("refused")], "b": [answer]})
    with LibraClient(["http://a", "http://b"], transport=mock, replica_cooldown_s=60) as client:
        client.score(ITEMS)
        client.score(ITEMS)
        assert [r.index for r in client.score_stream(ITEMS)] == [0, 1, 2]
    assert calls == ["a", "b", "b", "b"]  # a, out after the first call, is not tried again


async def test_the_blocking_client_works_inside_a_running_loop(server):
    # As in a notebook: a loop is running in this thread, and the blocking calls must not need it.
    asyncio.get_running_loop()
    with LibraClient(server.url) as client:
        assert [r.reward for r in client.score(ITEMS)] == [0.0, 1.0, 0.0]
        assert sorted(r.index for r in client.score_stream(ITEMS)) == [0, 1, 2]
        assert [r.reward for r in await client.ascore(ITEMS)] == [0.0, 1.0, 0.0]
    assert server.connections == 1


def test_ascore_serves_successive_event_loops_on_one_pool(server):
    with LibraClient(server.url) as client:
        for _ in range(2):  # each asyncio.run is a new loop; the client's pool lives on its own
            assert [r.reward for r in asyncio.run(client.ascore(ITEMS))] == [0.0, 1.0, 0.0]
    assert server.connections == 1


def test_the_loop_thread_ends_on_close_on_collection_and_never_blocks_exit(tmp_path):
    with LibraClient("http://127.0.0.1:9") as client:
        thread = client._thread
        assert thread.is_alive() and thread.daemon
    assert not thread.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        client.score(ITEMS)

    dropped = LibraClient("http://127.0.0.1:9")
    thread = dropped._thread
    del dropped
    gc.collect()
    assert not thread.is_alive()

    script = "from libra_client import LibraClient; c = LibraClient('http://127.0.0.1:9'); print('left open')"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30,
                          cwd=Path(__file__).resolve().parents[2] / "client")
    assert done.returncode == 0 and done.stdout.strip() == "left open" and not done.stderr


def test_a_client_from_before_a_fork_refuses_in_the_child(monkeypatch):
    client = LibraClient("http://127.0.0.1:9")
    with monkeypatch.context() as m:
        m.setattr(os, "getpid", lambda: client._pid + 1)
        with pytest.raises(RuntimeError, match="before a fork"):
            client.score(ITEMS)
    client.close()
    assert not client._thread.is_alive()


def test_the_adapters_share_one_client_per_process(fresh_env, server):
    from libra_client import trl, verl

    fresh_env.setenv("LIBRA_URL", server.url)
    for ground_truth in ("4", "5"):
        assert verl.compute_score("s", "4", ground_truth, {"question": "What is 2 + 2?"})["score"] == 1.0
    assert [r["score"] for r in verl.compute_score_batch(["s"] * 2, ["4", "5"], ["4"] * 2, [{"question": "q"}] * 2)] \
        == [1.0, 0.0]
    for _ in range(2):  # verl's reward loop and TRL await from loops of their own
        assert asyncio.run(verl.compute_score_async("s", "4", "4", {"question": "q"}))["score"] == 1.0
        assert asyncio.run(trl.libra_reward(prompts=["q", "q"], completions=["4", "5"])) == [1.0, 0.0]
    assert len(libra_env._clients) == 1 and server.connections == 1


def test_the_shared_client_follows_the_settings_and_the_process(fresh_env):
    fresh_env.setenv("LIBRA_URL", "http://a:1,http://b:2")
    fresh_env.setenv("LIBRA_CHUNK_SIZE", "16")
    fresh_env.setenv("LIBRA_MAX_THINKING_TOKENS", "512")
    first, options = libra_env.shared_client()
    assert libra_env.shared_client()[0] is first and options == {"max_thinking_tokens": 512}
    assert [r.url for r in first._async.replicas] == ["http://a:1", "http://b:2"] and first._async.chunk_size == 16

    fresh_env.setenv("LIBRA_CLIENT_TIMEOUT_S", "30")
    other = libra_env.shared_client()[0]
    assert other is not first and other._async._http.timeout.read == 30.0

    with fresh_env.context() as m:  # as in a forked worker: the parent's clients are dropped, not reused
        m.setattr(os, "getpid", lambda: first._pid + 1)
        child = libra_env.shared_client()[0]
        assert child not in (first, other) and list(libra_env._clients.values()) == [child]
        assert libra_env.shared_client()[0] is child
        child.close()  # in the process it was made in
    first.close()
    other.close()


def test_a_bad_number_in_the_environment_names_its_variable(fresh_env):
    fresh_env.setenv("LIBRA_MAX_CONCURRENCY", "eight")
    with pytest.raises(ValueError, match="LIBRA_MAX_CONCURRENCY='eight'"):
        libra_env.client_settings()


def test_the_policy_and_the_retries_come_from_the_environment(fresh_env):
    fresh_env.setenv("LIBRA_POLICY", '{"forced": 0}')
    fresh_env.setenv("LIBRA_MAX_RETRIES", "2")
    _, kwargs, options = libra_env.client_settings()
    assert options == {"policy": {"forced": 0}} and kwargs["max_retries"] == 2
    for bad in ("forced=0", "[1]"):
        fresh_env.setenv("LIBRA_POLICY", bad)
        with pytest.raises(ValueError, match="LIBRA_POLICY=.* is not a JSON object"):
            libra_env.client_settings()


def test_trl_pays_a_refused_response_the_failure_reward_and_leaves_a_judge_failure_missing(fresh_env, server):
    """TRL gives a completion with no reward advantage 0 (no signal): right for an item the judge could
    not score, wrong for a response the reward policy refused, which must cost the policy something."""
    from libra_client import trl

    fresh_env.setenv("LIBRA_URL", server.url)
    completions = ["4", "status:no_answer", "status:degenerate", "status:too_long", "status:unparsed",
                   "status:error", "status:timeout"]
    logged: dict[str, float] = {}
    rewards = asyncio.run(trl.libra_reward(prompts=["q"] * 7, completions=completions,
                                           log_metric=lambda k, v: logged.__setitem__(k, v)))
    assert rewards == [1.0, 0.0, 0.0, 0.0, None, None, None]
    assert logged == {"libra/failed": 3 / 7, "libra/refused": 3 / 7, "libra/forced": 0.0}
    fresh_env.setenv("LIBRA_FAILURE_REWARD", "-1")
    assert asyncio.run(trl.libra_reward(prompts=["q"] * 2, completions=completions[:2])) == [1.0, -1.0]
    fresh_env.setenv("LIBRA_FAILURE_REWARD", "none")
    with pytest.raises(ValueError, match="LIBRA_FAILURE_REWARD='none' is not a valid float"):
        asyncio.run(trl.libra_reward(prompts=["q"], completions=["4"]))


def test_trl_fails_the_step_when_the_service_is_unreachable_never_zeros(fresh_env):
    """A batch the service never saw must raise: TRL would run the step on no reward at all."""
    from libra_client import trl

    with socket.socket() as s:  # a port with nothing behind it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fresh_env.setenv("LIBRA_URL", f"http://127.0.0.1:{port}")
    fresh_env.setenv("LIBRA_MAX_RETRIES", "0")
    with pytest.raises(RuntimeError, match=r"gave no result for 2 of 2 completions after every retry"):
        asyncio.run(trl.libra_reward(prompts=["q", "q"], completions=["4", "5"]))
