"""A tiny Ray Serve application that holds each request 3 s: with one request in flight and one queued per
proxy (the deployment options come from the Serve config in tests/ray/conftest.py), a burst shows what Ray's
own queue answers when it is full."""

from __future__ import annotations

import asyncio

from ray import serve


@serve.deployment(ray_actor_options={"num_cpus": 0})
class Sleepy:
    async def __call__(self, request) -> str:
        await asyncio.sleep(3)
        return "done"


app = Sleepy.bind()
