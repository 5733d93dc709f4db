"""slime's remote reward model client, run against the live service as its source shows it.

Facts from THUDM/slime ``slime/rollout/rm_hub/__init__.py`` @ 624b824a898ab0ec1fcb4d373004c7f3852bf515
(``remote_rm`` L34-52, the shared session L19-31; retries since dc0e13dafccf775943cbe7b4b70b8a7384e62831)
and ``slime/utils/types.py`` (``Sample.get_reward_value`` L246-247), read in
docs/research/trainer-contracts.md section 2; our own code:
- one POST per sample to ``--rm-url`` exactly as given, body ``{"prompt", "response", "label"}``: the
  prompt a templated string or the raw message list, the label the data set's raw value or null;
- one module-wide aiohttp session, ``TCPConnector(limit=64)``, ``ClientTimeout(total=120)``;
- 10 attempts, any exception retried, sleeping ``min(2**k, 30) + random()`` after failure k, then raise;
- ``await resp.json()`` (aiohttp refuses a body whose content type is not JSON) becomes ``sample.reward``;
  ``get_reward_value`` reads it whole without ``--reward-key``, ``reward[key]`` with it.
"""

from __future__ import annotations

import asyncio
import random
import threading

import aiohttp
import pytest

from tests.helpers import AppServer, build_app_for, perfect_nano_judge, wait_until, working

pytestmark = pytest.mark.integration


class SlimeRemoteRM:
    """``remote_rm`` and ``get_reward_value`` for one rollout (one session for all its samples)."""

    def __init__(self, rm_url: str, reward_key: str | None, max_retries: int = 10):
        self.rm_url, self.reward_key, self.max_retries = rm_url, reward_key, max_retries
        self.sleeps: list[float] = []

    async def __aenter__(self):
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64),
                                             timeout=aiohttp.ClientTimeout(total=120))
        return self

    async def __aexit__(self, *exc):
        await self.session.close()

    async def remote_rm(self, prompt, response, label):
        payload = {"prompt": prompt, "response": response, "label": label}
        for attempt in range(self.max_retries):
            try:
                async with self.session.post(self.rm_url, json=payload) as resp:
                    resp.raise_for_status()
                    return await resp.json()
            except Exception:
                if attempt + 1 >= self.max_retries:
                    raise
                delay = min(2**attempt, 30) + random.random()
                self.sleeps.append(delay)
                await asyncio.sleep(delay)

    def reward_value(self, reward):
        return reward if self.reward_key is None else reward[self.reward_key]

    async def batched(self, samples):
        rewards = await asyncio.gather(*(self.remote_rm(*s) for s in samples))
        return [self.reward_value(r) for r in rewards]


def messages(text):  # slime sends the data set's message list when the chat template is not applied
    return [{"role": "system", "content": "Solve it."}, {"role": "user", "content": text}]


SAMPLES = [
    ("<|im_start|>user\nWhat is 347 + 58?<|im_end|>\n<|im_start|>assistant\n", "347 + 58 = 405.<|im_end|>", 405),
    (messages("Compute 903 - 27."), "The answer is 866.", 876.0),  # a float label
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}},
                                   {"type": "text", "text": "What is 56 + 71?"}]}], "56 + 71 = 127.", None),
    (messages("What is 12 + 30?"), "12 + 30 = 42.", True),  # a boolean label: sent as the data set has it
]


@pytest.mark.parametrize("path, reward_key", [("slime/reward", "reward"), ("slime/reward/value", None),
                                              ("slime/reward?value_only=true", None)])
def test_rollout_rewards_on_each_endpoint(live_server, path, reward_key):
    async def run():
        async with SlimeRemoteRM(live_server.url_for(path), reward_key) as rm:
            return await rm.batched(SAMPLES), rm.sleeps

    rewards, sleeps = asyncio.run(run())
    assert rewards == [1.0, 0.0, 1.0, 1.0] and sleeps == []


def test_the_dict_form_carries_status_and_the_failure_flag(live_server):
    """A response over the text limit, and an empty question: per-sample failures with the failure
    reward and ``failed``, never an HTTP error that would burn slime's ten retries."""
    samples = [(messages("What is 1 + 1?"), working(4000) + " So 2.", 2), (messages("   "), "It is 2.", 2)]

    async def run():
        async with SlimeRemoteRM(live_server.url_for("slime/reward"), None) as rm:
            return await asyncio.gather(*(rm.remote_rm(*s) for s in samples)), rm.sleeps

    (long_one, empty_question), sleeps = asyncio.run(run())
    assert (long_one["status"], long_one["failed"], long_one["reward"]) == ("too_long", True, 0.0)
    assert (empty_question["status"], empty_question["failed"]) == ("invalid", True)
    assert sleeps == []


def test_a_full_admission_budget_is_waited_out_with_slimes_backoff(nano_tokenizer):
    """The real app over HTTP on a slow FakeEngine: another client holds the admission budget for ~1.5 s;
    slime's samples get 429 and back off (1 s, 2 s, ...) until they are admitted."""
    import requests

    from service.engine.fake import FakeEngine

    engine = FakeEngine(nano_tokenizer, perfect_nano_judge, max_model_len=1024, delay_s=1.5)
    items = [{"question": "What is 347 + 58?", "response": f"347 + 58 = {405 + i}."} for i in range(4)]
    app = build_app_for(engine, admission_budget=4)
    with AppServer(app) as server:
        holder = threading.Thread(target=lambda: requests.post(server.url_for("score"), json={"items": items}))
        holder.start()
        assert wait_until(lambda: app.state.serving.admission.pending >= 4, 30) is not None, "the holder's admission"

        async def run():
            async with SlimeRemoteRM(server.url_for("slime/reward/value"), None) as rm:
                return await rm.batched(SAMPLES[:2]), rm.sleeps

        rewards, sleeps = asyncio.run(run())
        holder.join()
    assert rewards == [1.0, 0.0] and sleeps  # refused first, then served
