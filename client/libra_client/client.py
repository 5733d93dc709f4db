"""Python clients for Libra Serve: ``AsyncLibraClient`` and the blocking ``LibraClient``, on httpx.

    with LibraClient(["http://judge-a:8000", "http://judge-b:8000"], api_key="...") as client:
        results = client.score([{"question": q, "response": r}, ...], judge="libra")

- Large batches are cut into chunks; each call sends at most ``max_concurrency`` of them at once.
- 429 and 503 are retried with exponential backoff and jitter, waiting at least the server's
  ``Retry-After``; connection errors and timeouts are retried too. Plain and streamed requests go
  through the one attempt loop (``AsyncLibraClient._request``), so they retry alike.
- Several base URLs are balanced by least outstanding requests; a replica that fails is taken out
  for a cool-down and then tried again, and its chunk goes to another replica.
- Results come back typed and in input order, one per item: the server's result, or a
  ``client_error`` status with the reason when every retry failed. No item is ever dropped.
- A client is meant to live long: its connection pool and the replicas' cool-downs carry over from
  call to call. ``LibraClient`` keeps one ``AsyncLibraClient`` on a private event loop in a thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import random
import threading
import time
import weakref
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import httpx

RETRY_STATUSES = (429, 502, 503, 504)
T = TypeVar("T")


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

    @property
    def score(self) -> float | None:
        """A scalar reward model's raw score (``reward`` is it, its sigmoid, or its group-normalised value);
        None for a generative judge's result."""
        return self.raw.get("score")


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


class _Broken(Exception):
    """A 200 whose body could not be read to its end: the attempt is retried like a lost connection.
    ``mark_down`` says whether the replica is to blame (garbled bytes) or not (a stream that stopped
    cleanly before its final line)."""

    def __init__(self, reason: str, *, mark_down: bool):
        super().__init__(reason)
        self.mark_down = mark_down


class _Call(Protocol):
    """What one logical request asks of the attempt loop: the payload of the next attempt (``None``
    once nothing is owed), how to read a 200, and what to raise when every attempt failed."""

    stream: bool

    def body(self) -> dict | None: ...

    def read(self, resp: httpx.Response) -> AsyncIterator[Any]: ...

    def give_up(self, attempts: int, last: str) -> Exception: ...


class _Plain:
    """A plain POST: the same payload on every attempt, one JSON body back."""

    stream = False

    def __init__(self, payload: dict):
        self.payload = payload

    def body(self) -> dict:
        return self.payload

    async def read(self, resp: httpx.Response) -> AsyncIterator[Any]:
        # A 200 whose JSON does not parse is not retried: the server answered, wrongly.
        yield resp.json()

    def give_up(self, attempts: int, last: str) -> Exception:
        return RuntimeError(f"gave up after {attempts} attempts; last: {last}")


class _Resume:
    """A streamed /score that picks up where a broken stream stopped: each attempt asks only for the
    items not yet received, and maps a line's ``index`` (a position in that attempt's items) back to
    the caller's."""

    stream = True

    def __init__(self, items: Sequence[dict[str, Any]], options: dict[str, Any]):
        self.items, self.options = list(items), options
        self.missing = dict.fromkeys(range(len(self.items)))  # insertion-ordered set of indices still owed
        self.order: list[int] = []

    def body(self) -> dict | None:
        if not self.missing:
            return None
        self.order = list(self.missing)
        return {**self.options, "items": [self.items[i] for i in self.order], "stream": True}

    async def read(self, resp: httpx.Response) -> AsyncIterator[ScoredItem]:
        finished = False
        try:
            async for line in resp.aiter_lines():
                # Read on to the end after the final line (there is nothing more): a response read
                # to its end hands its connection back to the pool, one closed early does not.
                if finished or not line.strip():
                    continue
                obj = json.loads(line)
                if obj.get("done"):
                    finished = True
                    continue
                index = self.order[obj["index"]]
                if index in self.missing:
                    del self.missing[index]
                    yield ScoredItem(index, obj.get("id"), obj["status"], obj.get("reward"), obj.get("verdict"),
                                     raw={**obj, "index": index})
        except json.JSONDecodeError as exc:  # a line cut mid-way: the connection, not the request
            raise _Broken(f"{type(exc).__name__}: {exc}", mark_down=True) from exc
        if not finished or self.missing:
            raise _Broken("the stream ended " + ("with items missing" if finished else "without its final line"),
                          mark_down=False)

    def give_up(self, attempts: int, last: str) -> Exception:
        return RuntimeError(f"stream incomplete after {attempts} attempts: {len(self.missing)} of "
                            f"{len(self.items)} items without a result; last: {last}")


class AsyncLibraClient:
    def __init__(self, base_urls: str | Sequence[str] = "http://127.0.0.1:8000", *, api_key: str | None = None,
                 chunk_size: int = 256, max_concurrency: int = 8, timeout_s: float = 900.0, max_retries: int = 8,
                 backoff_base_s: float = 0.5, backoff_max_s: float = 30.0, replica_cooldown_s: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None):
        urls = [base_urls] if isinstance(base_urls, str) else list(base_urls)
        if not urls:
            raise ValueError("at least one base URL is needed")
        self.replicas = [_Replica(u.rstrip("/")) for u in urls]
        self.chunk_size, self.max_concurrency, self.max_retries = chunk_size, max_concurrency, max_retries
        self.backoff_base_s, self.backoff_max_s = backoff_base_s, backoff_max_s
        self.replica_cooldown_s = replica_cooldown_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # No cap on connections: each call bounds its own chunks (max_concurrency), and a client shared by
        # many concurrent calls (verl's reward loop awaits one per sample) must not queue them in the pool,
        # where neither the server's admission nor its deadlines can see them.
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=10.0), headers=headers,
                                       limits=httpx.Limits(max_connections=None), transport=transport)

    async def __aenter__(self) -> AsyncLibraClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def score(self, items: Sequence[dict[str, Any]], **options: Any) -> list[ScoredItem]:
        """Score ``items`` (dicts with question, response, optional reference and id); request options
        (judge, samples, mode, timeout_s, ...) pass through. One result per item, in order."""
        # Per call, not per client: concurrent calls on one shared client (one per sample) stay independent.
        sem = asyncio.Semaphore(self.max_concurrency)
        chunks = [(start, list(items[start:start + self.chunk_size]))
                  for start in range(0, len(items), self.chunk_size)]
        parts = await asyncio.gather(*(self._score_chunk(sem, start, chunk, options) for start, chunk in chunks))
        return [r for part in parts for r in part]

    async def _score_chunk(self, sem: asyncio.Semaphore, start: int, chunk: list[dict],
                           options: dict) -> list[ScoredItem]:
        async with sem:
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
        # aclosing: a caller that stops early must still release the replica and the response now.
        async with contextlib.aclosing(self._request("/score", _Resume(items, options))) as results:
            async for result in results:
                yield result

    async def _post(self, path: str, payload: dict) -> dict:
        [body] = [body async for body in self._request(path, _Plain(payload))]
        return body

    async def _request(self, path: str, call: _Call) -> AsyncIterator[Any]:
        """The one attempt loop, for plain and streamed requests alike: up to ``max_retries + 1``
        attempts, each on the replica with the fewest outstanding requests. A 4xx other than 429 raises
        ``RequestRejected`` at once. A 429/5xx from RETRY_STATUSES waits the backoff or the server's
        Retry-After, whichever is longer (a 429 is a busy replica, not a broken one: it is not taken
        out). A lost connection, a timeout or a garbled stream takes the replica out for its cool-down
        and moves on at once, waiting the backoff only when every replica is out; a stream that stopped
        cleanly before its final line is retried the same way, but leaves its replica in."""
        last = "no attempt made"
        for attempt in range(self.max_retries + 1):
            payload = call.body()
            if payload is None:
                return
            replica = self._pick()
            backoff = min(self.backoff_max_s, self.backoff_base_s * 2**attempt) * (0.5 + random.random() / 2)
            replica.outstanding += 1
            try:
                request = self._http.build_request("POST", replica.url + path, json=payload)
                resp = await self._http.send(request, stream=call.stream)
                try:
                    if resp.status_code == 200:
                        async for out in call.read(resp):
                            yield out
                        replica.failures = 0
                        return
                    await resp.aread()  # the error envelope, for RequestRejected
                finally:
                    await resp.aclose()
                if resp.status_code not in RETRY_STATUSES:
                    raise RequestRejected(resp.status_code, _body(resp))
                last = f"{replica.url}: HTTP {resp.status_code}"
                if resp.status_code != 429:
                    self._mark_down(replica)
                delay = max(backoff, _retry_after(resp))
            except (httpx.TransportError, httpx.TimeoutException, _Broken) as exc:
                broken = isinstance(exc, _Broken)
                last = f"{replica.url}: {exc}" if broken else f"{replica.url}: {type(exc).__name__}: {exc}"
                if not broken or exc.mark_down:
                    self._mark_down(replica)
                delay = backoff if all(r.down_until > time.monotonic() for r in self.replicas) else 0
            finally:
                replica.outstanding -= 1
            await asyncio.sleep(delay)
        if call.body() is not None:  # a stream's last attempt may have brought every item, final line or not
            raise call.give_up(self.max_retries + 1, last)

    def _pick(self) -> _Replica:
        now = time.monotonic()
        up = [r for r in self.replicas if r.down_until <= now]
        pool = up or self.replicas  # all down: try the one that comes back soonest
        return min(pool, key=lambda r: (r.down_until if not up else 0, r.outstanding))

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


_DONE = object()


async def _next_or_done(stream: AsyncIterator[T]) -> T | object:
    # run_coroutine_threadsafe takes coroutines only, and a sentinel keeps StopAsyncIteration off the
    # thread boundary.
    try:
        return await stream.__anext__()
    except StopAsyncIteration:
        return _DONE


async def _close_stream(stream: Any) -> None:
    # A __anext__ cancelled by the caller (Ctrl-C) may still be unwinding; aclose() on a running
    # generator raises, so let it finish first.
    while stream.ag_running:
        await asyncio.sleep(0)
    await stream.aclose()


def _shut_down(client: AsyncLibraClient, loop: asyncio.AbstractEventLoop, thread: threading.Thread,
               pid: int) -> None:
    """Close the pool, stop the loop and join its thread. A finalizer: it holds no reference to the
    ``LibraClient``, and runs at close(), when the client is collected, or at interpreter exit."""
    if os.getpid() != pid:  # a forked child inherits the loop but not the thread that ran it
        return
    if threading.current_thread() is thread:  # collected on its own loop: nothing may block here
        loop.call_soon(loop.stop)
        return
    if thread.is_alive():
        with contextlib.suppress(Exception):  # best effort: a loop stuck past the timeout is abandoned
            asyncio.run_coroutine_threadsafe(client.aclose(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
    if not thread.is_alive():
        loop.close()


class LibraClient:
    """Blocking client with the same behaviour as ``AsyncLibraClient`` (same arguments).

    It keeps one ``AsyncLibraClient`` on a private event loop, run by a daemon thread, for its whole
    life, so the connection pool and the replicas' cool-downs carry over from call to call. Calls
    never touch the caller's event loop, so they also work where one is running (a notebook), and
    ``ascore`` can be awaited from any loop. Close it with ``close()`` or ``with LibraClient(...)``;
    one left open is closed when it is collected or at interpreter exit. Not usable after a fork:
    make a new one in the child.
    """

    def __init__(self, base_urls: str | Sequence[str] = "http://127.0.0.1:8000", **kwargs: Any):
        self._async = AsyncLibraClient(base_urls, **kwargs)
        self._pid = os.getpid()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="libra-client", daemon=True)
        self._thread.start()
        self._closer = weakref.finalize(self, _shut_down, self._async, self._loop, self._thread, self._pid)

    def __enter__(self) -> LibraClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._closer()

    def score(self, items: Sequence[dict[str, Any]], **options: Any) -> list[ScoredItem]:
        """``AsyncLibraClient.score``, blocking."""
        return self._call(self._async.score(items, **options))

    async def ascore(self, items: Sequence[dict[str, Any]], **options: Any) -> list[ScoredItem]:
        """``score`` awaited from any event loop (each ``asyncio.run`` makes a new one): the work runs
        on this client's own loop, whose pool outlives the caller's loop. Cancelling it cancels the call."""
        return await asyncio.wrap_future(self._submit(self._async.score(items, **options)))

    def score_stream(self, items: Sequence[dict[str, Any]], **options: Any) -> Iterator[ScoredItem]:
        """The blocking twin of ``AsyncLibraClient.score_stream``: a generator of results as they come."""
        stream = self._async.score_stream(items, **options)
        try:
            while (result := self._call(_next_or_done(stream))) is not _DONE:
                yield result
        finally:
            if self._closer.alive and os.getpid() == self._pid:
                self._call(_close_stream(stream))

    def _submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        problem = ("was made in another process (before a fork): make a new one in this process"
                   if os.getpid() != self._pid else "is closed" if not self._closer.alive else None)
        if problem:
            coro.close()  # never awaited: say so quietly rather than with a RuntimeWarning
            raise RuntimeError(f"this LibraClient {problem}")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        future = self._submit(coro)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # interrupted (Ctrl-C): do not leave the request running on our loop
            raise
