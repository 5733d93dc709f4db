"""OpenRLHF's remote reward clients, run against the live service as each version's source shows them.

Facts from OpenRLHF/OpenRLHF (read in docs/research/trainer-contracts.md, section 1); our own code:
- 2024: ``openrlhf/utils/remote_rm_utils.py`` @ 07c34b303e86fcdffa755e9e25c28cca5b44c675: ``requests.post``
  with a JSON content type and ``timeout=180``, body ``{"query": [...]}`` only; ``raise_for_status``, then
  ``assert "rewards" in response``; 5 tries with a fixed 1 s sleep, any exception, then raise. Several
  URLs: every URL gets the whole batch and the rewards are summed (``train_ppo_ray.py`` ``reward_fn``).
- 2025: same file @ 494850f50342ed38d5ae76ef45a3207f3523b582 to 591b148cc5a829c710078553cc490f178bb4a4af:
  body ``{query, prompts, labels}``; ``RemoteRewardModel.get_rewards`` shards contiguously with
  ``ceil(N / num_servers)`` per server, an empty payload for a server past the end; the whole JSON is
  returned; ``update_samples_with_rewards`` (``experience_maker.py`` L208-244 @ 591b148c) concatenates
  ``rewards`` with ``torch.as_tensor``, reads ``scores`` from every shard when shard 0 has it, and indexes
  every shard's ``extra_logs`` with shard 0's keys.
- Newest: ``openrlhf/utils/agent.py`` @ 3c3be6234e0cb353e76bb8019947db9dfe99fca7 L281-356
  (``SingleTurnAgentExecutor``): one aiohttp POST per sample, 1-element lists, the same ceil sharding so
  URL 0 gets the item and the others empty lists, all gathered; ``ClientTimeout(total=180)``; 5 tries,
  1 s sleep; reads ``rewards``, ``scores`` (``rewards`` when None), ``extra_logs`` (``{}`` when missing)
  and turns each value into ``torch.tensor([value])``.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time

import aiohttp
import pytest
import requests
import torch

from tests.helpers import AppServer, build_app_for, perfect_nano_judge, wait_until, working

pytestmark = pytest.mark.integration

PROMPT = "<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n"
SAMPLES = [  # (question, response, label as the data set stores it: an integer)
    ("What is 347 + 58?", "347 + 58 = 405.", 405),
    ("Compute 903 - 27.", "The answer is 866.", 876),
    ("What is 56 + 71?", "56 + 71 = 127.", 127),
    ("What is 12 + 30?", "12 + 30 = 42.", 42),
]
EXPECTED = [1.0, 0.0, 1.0, 1.0]


def batch(samples=SAMPLES):
    prompts = [PROMPT.format(q=q) for q, _, _ in samples]
    # 2024/2025 decode with skip_special_tokens=False: the end-of-turn and (2024) pad tokens stay in.
    queries = [p + r + "<|im_end|>\n<|endoftext|><|endoftext|>" for p, (_, r, _) in zip(prompts, samples, strict=True)]
    return queries, prompts, [label for _, _, label in samples]


# -- the clients, as their source shows them ---------------------------------------------------------


def request_api_wrapper_2024(url, data, score_key="rewards", try_max_times=5, sleep_s=1.0):
    for _ in range(try_max_times):
        try:
            response = requests.post(url=url, json=data, headers={"Content-Type": "application/json"}, timeout=180)
            response.raise_for_status()
            response = response.json()
            assert score_key in response, f"{score_key} not in {response}"
            return response.get(score_key)
        except Exception:
            time.sleep(sleep_s)
    raise Exception(f"Request error for {try_max_times} times, returning None. Please check the API server.")


def request_api_wrapper_2025(url, data, try_max_times=5, sleep_s=1.0):
    for _ in range(try_max_times):
        try:
            response = requests.post(url=url, json=data, headers={"Content-Type": "application/json"}, timeout=180)
            response.raise_for_status()
            return response.json()
        except Exception:
            time.sleep(sleep_s)
    raise Exception(f"Request error for {try_max_times} times, returning None. Please check the API server.")


def get_rewards_2025(urls, queries, prompts, labels):
    """RemoteRewardModel.get_rewards: contiguous ceil shards, one per server, empty ones included."""
    size = math.ceil(len(queries) / len(urls))
    shards = []
    for i, url in enumerate(urls):
        lo, hi = i * size, min((i + 1) * size, len(queries))
        shards.append(request_api_wrapper_2025(url, {"query": queries[lo:hi], "prompts": prompts[lo:hi],
                                                     "labels": labels[lo:hi]}))
    return shards


def update_samples_with_rewards_2025(rewards_info, samples_len):
    """experience_maker.update_samples_with_rewards (after the as_tensor fixes): what a trainer step reads."""
    rewards = torch.cat([torch.as_tensor(info["rewards"]) for info in rewards_info], dim=0).split(samples_len)
    if "scores" in rewards_info[0]:
        scores = torch.cat([torch.as_tensor(info["scores"]) for info in rewards_info], dim=0).split(samples_len)
    else:
        scores = rewards
    logs = {}
    for key in rewards_info[0]["extra_logs"].keys():  # shard 0's key set, indexed on every shard
        logs[key] = torch.cat([torch.as_tensor(info["extra_logs"][key]) for info in rewards_info]).split(samples_len)
    return rewards, scores, logs


async def fetch_reward_newest(urls, query, prompt, label, sleep_s=1.0):
    """SingleTurnAgentExecutor: one sample, ceil-sharded over the URLs (URL 0 gets it), gathered."""

    async def post(url, payload):
        for attempt in range(5):
            try:
                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=180)) as session:
                    async with session.post(url, json=payload) as resp:
                        resp.raise_for_status()
                        return await resp.json()
            except Exception:
                if attempt == 4:
                    raise RuntimeError("remote reward failed after 5 attempts") from None
                await asyncio.sleep(sleep_s)

    items = [query], [prompt], [label]
    size = math.ceil(1 / len(urls))
    payloads = [{"query": items[0][i * size:(i + 1) * size], "prompts": items[1][i * size:(i + 1) * size],
                 "labels": items[2][i * size:(i + 1) * size]} for i in range(len(urls))]
    infos = await asyncio.gather(*(post(u, p) for u, p in zip(urls, payloads, strict=True)))
    info = infos[0]
    reward = info.get("rewards")
    scores = info.get("scores")
    scores = reward if scores is None else scores
    extra_logs = info.get("extra_logs") or {}
    return (torch.tensor([reward]), torch.tensor([scores]),
            {k: torch.tensor([v]) for k, v in extra_logs.items()})


# -- the contracts -----------------------------------------------------------------------------------


def test_2024_query_only_with_pad_tokens(live_server):
    queries, _, _ = batch()
    rewards = torch.tensor(request_api_wrapper_2024(live_server.url_for("get_reward"), {"query": queries}))
    assert rewards.tolist() == EXPECTED


def test_2024_every_url_gets_the_whole_batch_and_rewards_are_summed(live_server):
    queries, _, _ = batch()
    urls = [live_server.url_for("get_reward")] * 2
    per_url = [torch.tensor(request_api_wrapper_2024(u, {"query": queries})) for u in urls]
    assert torch.stack(per_url).sum(dim=0).tolist() == [2 * r for r in EXPECTED]


def test_2025_uneven_shards_integer_labels_and_an_over_long_item(live_server):
    """4 samples over 3 URLs: shards of 2, 2 and 0. One response is longer than the server's text limit:
    that item alone fails (failure reward, judge_failed 1.0); the batch and the step go on."""
    samples = [*SAMPLES[:3], ("What is 1 + 1?", working(4000) + " So 1 + 1 = 2.", 2)]
    assert len(samples[3][1]) > 200_000
    queries, prompts, labels = batch(samples)
    shards = get_rewards_2025([live_server.url_for("get_reward")] * 3, queries, prompts, labels)
    assert [len(s["rewards"]) for s in shards] == [2, 2, 0]
    rewards, scores, logs = update_samples_with_rewards_2025(shards, [1, 1, 1, 1])
    assert [r.item() for r in rewards] == [1.0, 0.0, 1.0, 0.0]
    assert [r.item() for r in scores] == [1.0, 0.0, 1.0, 0.0]
    assert [x.item() for x in logs["judge_failed"]] == [0.0, 0.0, 0.0, 1.0]


def test_2025_more_servers_than_samples(live_server):
    queries, prompts, labels = batch(SAMPLES[:1])
    shards = get_rewards_2025([live_server.url_for("get_reward")] * 4, queries, prompts, labels)
    rewards, _, logs = update_samples_with_rewards_2025(shards, [1])
    assert [r.item() for r in rewards] == [1.0] and set(logs) == {"judge_failed", "judge_forced"}


def test_newest_one_post_per_sample_with_empty_payloads_to_the_other_urls(live_server):
    queries, prompts, labels = batch()
    urls = [live_server.url_for("get_reward")] * 2

    async def run():
        return await asyncio.gather(*(fetch_reward_newest(urls, q, p, lab)
                                      for q, p, lab in zip(queries, prompts, labels, strict=True)))

    out = asyncio.run(run())
    assert [r.reshape(-1).tolist() for r, _, _ in out] == [[x] for x in EXPECTED]
    assert all(logs["judge_failed"].reshape(-1).tolist() == [0.0] for _, _, logs in out)


@pytest.mark.parametrize("cue", ["429", "503"])
def test_a_refusal_in_the_middle_is_retried_by_the_client(nano_tokenizer, cue):
    """The real app over HTTP on a slow FakeEngine (a state on cue the live engine cannot give): a
    trainer's step meets a full admission budget (another step holds it: 429 with Retry-After) or a
    draining server (503 with Retry-After); OpenRLHF's 1 s retries then get every reward."""
    from service.engine.fake import FakeEngine

    engine = FakeEngine(nano_tokenizer, perfect_nano_judge, max_model_len=1024, delay_s=1.2)
    app = build_app_for(engine, admission_budget=4)
    queries, prompts, labels = batch()
    body = {"query": queries, "prompts": prompts, "labels": labels}
    with AppServer(app) as server:
        url = server.url_for("get_reward")
        if cue == "429":  # another step's batch holds the whole budget for ~1.2 s
            other = threading.Thread(target=lambda: requests.post(url, json=body, timeout=30))
        else:  # the server drains (a restart) and is back in ~1.5 s
            app.state.serving.lifecycle.draining = True

            def back_in_service():
                time.sleep(1.5)
                app.state.serving.lifecycle.draining = False

            other = threading.Thread(target=back_in_service)
        other.start()
        if cue == "429":  # the other batch holds the budget before ours is sent
            admitted = wait_until(lambda: app.state.serving.admission.pending >= 4, 30)
            assert admitted is not None, "the other batch's admission"
        first = requests.post(url, json=body, timeout=30)
        assert first.status_code == int(cue) and "Retry-After" in first.headers
        rewards = request_api_wrapper_2024(url, body)
        other.join()
    assert rewards == EXPECTED
