"""The narrow interface between the judge and whatever runs the model.

Nothing outside ``service/engine/`` imports vLLM. The judge talks to a ``JudgeEngine``: the vLLM
implementation in production, ``FakeEngine`` in fast unit tests of the logic around it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable


class RequestKind(StrEnum):
    """Why the service sent an engine request. Its id is ``libra-<kind>-<hex>``, so engine logs, the
    fake engine's records and aborts can tell a judgment from a probe."""

    judge = "judge"  # the judgment of one item (k samples)
    answer = "answer"  # a judge that closed its thinking within the budget finishes its answer
    force = "force"  # the verdict, constrained to the labels, after the thinking budget ran out
    direct = "direct"  # direct-first: the verdict without thinking, constrained to the labels, with their probabilities
    prime = "prime"  # a group's shared prompt prefix, prefilled once for the prefix cache
    probe = "probe"  # one token at a verdict's position, for the labels' probabilities (prefix-cached)
    ready = "ready"  # the readiness probe's one token (a scalar model's: one score)
    score = "score"  # a scalar reward model's score of one item (the pooling runner)


def new_request_id(kind: RequestKind) -> str:
    return f"libra-{kind.value}-{uuid.uuid4().hex}"


def request_kind(request_id: str) -> RequestKind | None:
    """The kind of one of our request ids (None for any other id)."""
    prefix, _, rest = request_id.partition("-")
    kind = rest.partition("-")[0]
    return RequestKind(kind) if prefix == "libra" and kind in RequestKind.__members__ else None


@dataclass(frozen=True)
class SamplingSpec:
    """Engine-neutral sampling settings for one judge call (``n`` samples of one prompt)."""

    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    seed: int | None = None
    choices: tuple[str, ...] = ()  # when set, the output must be exactly one of these (guided choice)
    logprobs: int | None = None  # this many top log-probabilities at the first generated position
    priority: int = 0  # lower is served sooner, when the engine schedules by priority


@dataclass(frozen=True)
class Completion:
    """One generated sample: the text the judge produced and why generation stopped."""

    text: str
    token_ids: tuple[int, ...]
    finish_reason: str | None  # "stop" (end token), "length" (hit max_tokens), "abort"
    first_logprobs: dict[int, float] | None = None  # token id -> log-probability at the first position


@dataclass(frozen=True)
class Generation:
    prompt_tokens: int
    completions: list[Completion] = field(default_factory=list)


@dataclass(frozen=True)
class Scored:
    """A scalar reward model's output for one prompt: its raw score (the classification head's logit,
    no activation) and the prompt's length."""

    prompt_tokens: int
    score: float


class EngineError(RuntimeError):
    """The engine failed this call (the engine itself may still be healthy)."""


class EngineDead(EngineError):
    """The engine cannot serve any more requests; the process must restart it."""


@runtime_checkable
class JudgeEngine(Protocol):
    """What the judge needs from an inference engine."""

    model_name: str
    tokenizer: Any  # a Hugging Face tokenizer: the judge renders and tokenizes prompts itself
    max_model_len: int | None  # the context length prompts and outputs must fit (None: unbounded)
    seeded_sampling: bool  # False where a per-request seed is unsafe (the service refuses seeds there)
    scheduling_policy: str  # "fcfs" or "priority" (vLLM's --scheduling-policy): whether priorities apply
    # What the engine runs the model as (vLLM's runner): "generate" (generate works) or "pooling" (a scalar reward
    # model, a one-label sequence classifier: only classify works). A server runs one (judge/profiles.py: kind).
    runner: str

    async def generate(self, prompt_token_ids: list[int], sampling: SamplingSpec, request_id: str) -> Generation:
        """Generate ``sampling.n`` completions; cancelling the awaiting task aborts the request."""
        ...

    async def classify(self, prompt_token_ids: list[int], request_id: str, priority: int = 0) -> Scored:
        """A scalar model's raw score of the prompt (runner "pooling"); cancelling aborts the request."""
        ...

    async def abort(self, request_ids: list[str]) -> None: ...

    async def check_health(self) -> None:
        """Raise ``EngineDead`` when the engine cannot serve."""
        ...

    @property
    def errored(self) -> bool: ...

    def num_unfinished_requests(self) -> int: ...
