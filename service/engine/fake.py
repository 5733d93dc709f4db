"""The one documented fake engine: fast unit tests of the logic around the engine, and the front-end
benchmark (an engine that costs nothing, so only the HTTP layer and the scorer are measured).

``FakeEngine(tokenizer, reply)`` answers every prompt with ``reply(prompt_text, sample_index)`` (a
string), or a fixed string. With guided choices (a forced verdict) it answers the reply when it is one
of the choices and the first choice otherwise, as a constrained decoder would. It tokenizes with the
given tokenizer so prompt and completion token counts are real, and records every prompt, sampling
spec and request id it saw (``calls``, ``specs``, ``request_ids``) so tests can assert what reached the
engine. ``FakeEngine.instant(tokenizer, reply)`` records nothing and encodes its fixed reply once: a
benchmark's million requests cost neither memory nor tokenizer time.

Integration tests use the real vLLM engine; this fake is never the only test of a path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

from service.engine.base import (
    Completion,
    EngineDead,
    EngineError,
    Generation,
    RequestKind,
    SamplingSpec,
    Scored,
    request_kind,
)


class FakeEngine:
    def __init__(self, tokenizer: Any, reply: str | Callable[[str, int], str], model_name: str = "fake",
                 delay_s: float = 0.0, max_model_len: int | None = None, seeded_sampling: bool = True,
                 record: bool = True, logprobs: Callable[[str], dict[str, float]] | None = None,
                 score: Callable[[str], float] | None = None):
        """``logprobs``: the prompt's next-token distribution as {text: log-probability} (each text's
        first token stands for it), for requests that ask for log-probabilities; by default the reply's
        first token has probability 1. ``score``: a scalar reward model's raw score of the prompt's text;
        given, the engine is a pooling one (it classifies and refuses to generate, as vLLM does)."""
        self.tokenizer = tokenizer
        self._score = score
        self.runner = "pooling" if score is not None else "generate"
        self._logprobs = logprobs
        self.scheduling_policy = "fcfs"
        self.seeded_sampling = seeded_sampling
        self.model_name = model_name
        self._reply = reply if callable(reply) else (lambda _prompt, _i: reply)
        self.delay_s = delay_s
        self.max_model_len = max_model_len
        self.record = record
        self.calls: list[list[int]] = []
        self.specs: list[SamplingSpec] = []
        self.request_ids: list[str] = []
        self.running: set[str] = set()
        self.aborted: list[str] = []
        self.dead = False
        self._fixed: Completion | None = None  # instant mode: the one reply, encoded once

    @classmethod
    def instant(cls, tokenizer: Any, reply: str, model_name: str = "instant",
                max_model_len: int = 1 << 20) -> FakeEngine:
        """Answers every request at once with ``reply`` (no decode of the prompt, nothing recorded)."""
        engine = cls(tokenizer, reply, model_name=model_name, max_model_len=max_model_len, record=False)
        engine._fixed = Completion(reply, tuple(tokenizer.encode(reply, add_special_tokens=False)), "stop")
        return engine

    async def generate(self, prompt_token_ids: list[int], sampling: SamplingSpec, request_id: str) -> Generation:
        if self.dead:
            raise EngineDead("fake engine is dead")
        if self.runner == "pooling":
            raise EngineError("VLLMValidationError: This model does not support generation")
        if self._fixed is not None and not sampling.choices and len(self._fixed.token_ids) <= sampling.max_tokens:
            return Generation(prompt_tokens=len(prompt_token_ids), completions=[self._fixed] * sampling.n)
        self._record(prompt_token_ids, sampling, request_id)
        if self.max_model_len is not None and len(prompt_token_ids) + sampling.max_tokens > self.max_model_len:
            # Stricter than vLLM (which refuses only a prompt that leaves no room at all): every request
            # the scorer sends must fit its prompt and its whole output budget in the context.
            raise EngineError(f"the prompt's {len(prompt_token_ids)} tokens and max_tokens {sampling.max_tokens} "
                              f"exceed the model's context of {self.max_model_len} tokens")
        async with self._running(request_id):
            prompt = self.tokenizer.decode(prompt_token_ids, skip_special_tokens=False)
            completions = []
            for i in range(sampling.n):
                reply = self._reply(prompt, i)
                if sampling.choices and reply not in sampling.choices:
                    reply = sampling.choices[0]
                ids = self.tokenizer.encode(reply, add_special_tokens=False)
                finish = "stop"
                if len(ids) > sampling.max_tokens:
                    ids, finish = ids[: sampling.max_tokens], "length"
                text = self.tokenizer.decode(ids, skip_special_tokens=True)
                first = None
                if sampling.logprobs:
                    dist = self._logprobs(prompt) if self._logprobs else ({reply: 0.0} if ids else {})
                    first = {self.tokenizer.encode(t, add_special_tokens=False)[0]: lp for t, lp in dist.items() if t}
                completions.append(Completion(text=text, token_ids=tuple(ids), finish_reason=finish,
                                              first_logprobs=first))
            return Generation(prompt_tokens=len(prompt_token_ids), completions=completions)

    async def classify(self, prompt_token_ids: list[int], request_id: str, priority: int = 0) -> Scored:
        if self.dead:
            raise EngineDead("fake engine is dead")
        if self._score is None:
            raise EngineError("VLLMValidationError: classify is not supported by this model (a generative one)")
        self._record(prompt_token_ids, SamplingSpec(max_tokens=0, priority=priority), request_id)
        if self.max_model_len is not None and len(prompt_token_ids) > self.max_model_len:
            raise EngineError(f"the prompt's {len(prompt_token_ids)} tokens exceed the model's context of "
                              f"{self.max_model_len} tokens")
        async with self._running(request_id):
            return Scored(len(prompt_token_ids), float(self._score(
                self.tokenizer.decode(prompt_token_ids, skip_special_tokens=False))))

    def _record(self, prompt_token_ids: list[int], spec: SamplingSpec, request_id: str) -> None:
        if self.record:
            self.calls.append(list(prompt_token_ids))
            self.specs.append(spec)
            self.request_ids.append(request_id)

    @asynccontextmanager
    async def _running(self, request_id: str):
        """A request in flight: counted as running, delayed by ``delay_s``, recorded as aborted if cancelled."""
        self.running.add(request_id)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            yield
        except asyncio.CancelledError:
            self.aborted.append(request_id)
            raise
        finally:
            self.running.discard(request_id)

    async def abort(self, request_ids: list[str]) -> None:
        self.aborted.extend(request_ids)

    async def check_health(self) -> None:
        if self.dead:
            raise EngineDead("fake engine is dead")

    @property
    def errored(self) -> bool:
        return self.dead

    def calls_of(self, *kinds: RequestKind) -> list[list[int]]:
        """The prompts of the recorded requests of these kinds."""
        return [c for c, rid in zip(self.calls, self.request_ids, strict=True) if request_kind(rid) in kinds]

    def judge_calls(self) -> int:
        """Generate calls that judged an item (not group-priming prefills, readiness or label-probability probes)."""
        return sum(request_kind(rid) not in (RequestKind.prime, RequestKind.ready, RequestKind.probe)
                   for rid in self.request_ids)

    def num_unfinished_requests(self) -> int:
        return len(self.running)
