"""Python clients for Libra Serve: ``AsyncLibraClient`` and the blocking ``LibraClient``, on httpx.

    client = LibraClient(["http://judge-a:8000", "http://judge-b:8000"], api_key="...")
    results = client.score([{"question": q, "response": r}, ...], judge="libra")

- Large batches are cut into chunks sent with bounded concurrency.
- 429 and 503 are retried with exponential backoff and jitter, waiting at least the server's
  ``Retry-After``; connection errors and timeouts are retried too.
- Several base URLs are balanced by least outstanding requests; a replica that fails is taken out
  for a cool-down and then tried again, and its chunk goes to another replica.
- Results come back typed and in input order, one per item: the server's result, or a
  ``ClientFailure`` status with the reason when every retry failed. No item is ever dropped.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

RETRY_STATUSES = (429, 502, 503, 504)


@dataclass
class ScoredItem:
    """One item's outcome. ``status`` is the server's item status, or ``client_error`` when the
    client could not get a result after every retry (``error`` says why)."""

    index: int
    id: str | None
    status: str
    reward: float | None = None
    verdict: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.reward is not None


class RequestRejected(Exception):
    """The server refused a request for a reason retrying cannot fix (4xx other than 429)."""

    def __init__(self, status: int, body: dict | str):
        self.status, self.body = status, body
        error = body.get("error", {}) if isinstance(body, dict) else {}
        super().__init__(f"HTTP {status}: {error.get('message', body)}")


@dataclass
class _Replica:
    url: str
    outstanding: int = 0
    down_until: float = 0.0
    failures: int = 0


class AsyncLibraClient:
    def __init__(self, base_urls: str | Sequence[str] = "http://127.0.0.1:8000", *, api_key: str | None = None,
                 chunk_size: int = 256, max_concurrency: int = 8, timeout_s: float = 900.0, max_retries: int = 8,
                 backoff_base_s: float = 0.5, backoff_max_s: float = 30.0, replica_cooldown_s: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None):
        urls = [base_urls] if isinstance(base_urls, str) else list(base_urls)
        if not urls:
            raise ValueError("at least one base URL is needed")
        self.replicas = [_Replica(u.rstrip("/")) for u in urls]
        self.chunk_size, self.max_retries = chunk_size, max_retries
        self.backoff_base_s, self.backoff_max_s = backoff_base_s, backoff_max_s
        self.replica_cooldown_s = replica_cooldown_s
        self._sem = asyncio.Semaphore(max_concurrency)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=10.0), headers=headers,
                                       transport=transport)

    async def __aenter__(self) -> AsyncLibraClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def score(self, items: Sequence[dict[str, Any]], **options: Any) -> list[ScoredItem]:
        """Score ``items`` (dicts with question, response, optional reference and id); request options
        (judge, samples, mode, timeout_s, ...) pass through. One result per item, in order."""
        chunks = [(start, list(items[start:start + self.chunk_size]))
                  for start in range(0, len(items), self.chunk_size)]
        parts = await asyncio.gather(*(self._score_chunk(start, chunk, options) for start, chunk in chunks))
        return [r for part in parts for r in part]

    async def _score_chunk(self, start: int, chunk: list[dict], options: dict) -> list[ScoredItem]:
        async with self._sem:
            try:
                body = await self._post("/score", {"items": chunk, **options})
            except RequestRejected:
                raise
            except Exception as exc:  # every retry failed: each item gets a typed error, none is lost
                return [ScoredItem(start + i, item.get("id"), "client_error", error=str(exc))
                        for i, item in enumerate(chunk)]
        return [ScoredItem(start + i, r.get("id"), r["status"], r.get("reward"), r.get("verdict"), raw=r)
                for i, r in enumerate(body["results"])]

    async def score_stream(self, items: Sequence[dict[str, Any]], **options: Any) -> AsyncIterator[ScoredItem]:
        """Each item's result as the server decides it (completion order; ``index`` is the item's
        position in ``items``). A stream that breaks before its final line is re-requested for the items
        not yet received only, with the same retries and backoff as ``score``; raises ``RuntimeError``
        when it cannot finish (``RequestRejected`` for a request the server refuses outright)."""
        items = list(items)
        missing = dict.fromkeys(range(len(items)))  # insertion-ordered set of indices still owed
        last = "no attempt made"
        for attempt in range(self.max_retries + 1):
            if not missing:
                return
            order = list(missing)
            replica = self._pick()
            wait = min(self.backoff_max_s, self.backoff_base_s * 2**attempt) * (0.5 + random.random() / 2)
            payload = {**options, "items": [items[i] for i in order], "stream": True}
            replica.outstanding += 1
            try:
                async with self._http.stream("POST", replica.url + "/score", json=payload) as resp:
                    if resp.status_code != 200:
                        await resp.aread()
                        if resp.status_code not in RETRY_STATUSES:
                            raise RequestRejected(resp.status_code, _body(resp))
                        last = f"{replica.url}: HTTP {resp.status_code}"
                        if resp.status_code != 429:
                            self._mark_down(replica)
                        await asyncio.sleep(max(wait, _retry_after(resp)))
                        continue
                    finished = False
                    async for line in resp.aiter_lines():
                        if not line.strip():
                            continue
                        obj = json.loads(line)
                        if obj.get("done"):
                            finished = True
                            break
                        index = order[obj["index"]]
                        if index in missing:
                            del missing[index]
                            yield ScoredItem(index, obj.get("id"), obj["status"], obj.get("reward"), obj.get("verdict"),
                                             raw={**obj, "index": index})
                    if finished and not missing:
                        replica.failures = 0
                        return
                    last = f"{replica.url}: the stream ended " + ("with items missing" if finished else
                                                                 "without its final line")
            except (httpx.TransportError, httpx.TimeoutException, json.JSONDecodeError) as exc:
                last = f"{replica.url}: {type(exc).__name__}: {exc}"
                self._mark_down(replica)
            finally:
                replica.outstanding -= 1
            await asyncio.sleep(wait if all(r.down_until > time.monotonic() for r in self.replicas) else 0)
        if missing:
            raise RuntimeError(f"stream incomplete after {self.max_retries + 1} attempts: {len(missing)} of "
                               f"{len(items)} items without a result; last: {last}")

    def _pick(self) -> _Replica:
        now = time.monotonic()
        up = [r for r in self.replicas if r.down_until <= now]
        pool = up or self.replicas  # all down: try the one that comes back soonest
        return min(pool, key=lambda r: (r.down_until if not up else 0, r.outstanding))

    async def _post(self, path: str, payload: dict) -> dict:
        last = "no attempt made"
        for attempt in range(self.max_retries + 1):
            replica = self._pick()
            wait = min(self.backoff_max_s, self.backoff_base_s * 2**attempt) * (0.5 + random.random() / 2)
            replica.outstanding += 1
            try:
                resp = await self._http.post(replica.url + path, json=payload)
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                last = f"{replica.url}: {type(exc).__name__}: {exc}"
                self._mark_down(replica)
                await asyncio.sleep(wait if all(r.down_until > time.monotonic() for r in self.replicas) else 0)
                continue
            finally:
                replica.outstanding -= 1
            if resp.status_code == 200:
                replica.failures = 0
                return resp.json()
            if resp.status_code in RETRY_STATUSES:
                last = f"{replica.url}: HTTP {resp.status_code}"
                if resp.status_code != 429:
                    self._mark_down(replica)
                retry_after = _retry_after(resp)
                await asyncio.sleep(max(wait, retry_after))
                continue
            raise RequestRejected(resp.status_code, _body(resp))
        raise RuntimeError(f"gave up after {self.max_retries + 1} attempts; last: {last}")

    def _mark_down(self, replica: _Replica) -> None:
        replica.failures += 1
        replica.down_until = time.monotonic() + self.replica_cooldown_s


def _body(resp: httpx.Response) -> dict | str:
    try:
        return resp.json()
    except ValueError:
        return resp.text


def _retry_after(resp: httpx.Response) -> float:
    try:
        return float(resp.headers.get("retry-after", 0))
    except ValueError:
        return 0.0


class LibraClient:
    """Blocking client with the same behaviour; runs ``AsyncLibraClient`` on a private event loop."""

    def __init__(self, base_urls: str | Sequence[str] = "http://127.0.0.1:8000", **kwargs: Any):
        self._args, self._kwargs = base_urls, kwargs

    def score(self, items: Sequence[dict[str, Any]], **options: Any) -> list[ScoredItem]:
        async def run() -> list[ScoredItem]:
            async with AsyncLibraClient(self._args, **self._kwargs) as client:
                return await client.score(items, **options)

        return asyncio.run(run())

    def score_stream(self, items: Sequence[dict[str, Any]], **options: Any) -> Iterator[ScoredItem]:
        """The blocking twin of ``AsyncLibraClient.score_stream``: a generator of results as they come."""
        loop = asyncio.new_event_loop()
        client = AsyncLibraClient(self._args, **self._kwargs)
        stream = client.score_stream(items, **options)
        try:
            while True:
                try:
                    yield loop.run_until_complete(stream.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            loop.run_until_complete(stream.aclose())
            loop.run_until_complete(client.aclose())
            loop.close()
