"""The JudgeEngine over vLLM's v1 ``AsyncLLM``: one engine, continuous batching across all requests.

Every item of every concurrent HTTP request becomes its own engine request the moment it arrives;
vLLM's scheduler batches them. There is no lock and no batch window here on purpose.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from service.engine.base import Completion, EngineDead, EngineError, Generation, SamplingSpec, Scored

log = logging.getLogger(__name__)

# On a CPU host vLLM's default memory fraction fails, so the KV cache gets an explicit size (GiB).
CPU_KVCACHE_GIB_DEFAULT = "2"


def add_engine_args(parser: argparse.ArgumentParser) -> None:
    """Add vLLM's own engine flags (``--model``, ``--max-model-len``, ``--tensor-parallel-size``...)."""
    from vllm.engine.arg_utils import AsyncEngineArgs

    AsyncEngineArgs.add_cli_args(parser)


def engine_parser_class() -> type[argparse.ArgumentParser]:
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    return FlexibleArgumentParser


def is_cpu_platform() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


class VllmEngine:
    """Adapts ``AsyncLLM`` to ``JudgeEngine``. Build it with ``open_vllm_engine``."""

    def __init__(self, llm: Any, tokenizer: Any, model_name: str):
        self._llm = llm
        self.tokenizer = tokenizer
        self.model_name = model_name
        self.max_model_len: int = llm.model_config.max_model_len
        # "priority" when vLLM runs with --scheduling-policy priority (requests then carry a priority)
        self.scheduling_policy: str = str(llm.vllm_config.scheduler_config.policy)
        # vLLM rewinds a seeded request's generator when it discards a token sampled mid chunked
        # prefill, through a CUDA-only API: on CPU that kills the engine core ("CPU Generator does not
        # use offset"), so one seeded request in a large batch would take the service down.
        self.seeded_sampling = not is_cpu_platform()
        # "pooling" for a sequence classifier (the launch sets --runner pooling for a scalar profile).
        self.runner: str = str(llm.model_config.runner_type)

    async def generate(self, prompt_token_ids: list[int], sampling: SamplingSpec, request_id: str) -> Generation:
        from vllm import SamplingParams, TokensPrompt
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

        params = SamplingParams(
            n=sampling.n,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_tokens,
            seed=sampling.seed,
            logprobs=sampling.logprobs,
            output_kind=RequestOutputKind.FINAL_ONLY,  # one message per request, not per token
            structured_outputs=StructuredOutputsParams(choice=list(sampling.choices)) if sampling.choices else None,
        )
        # AsyncLLM.generate aborts the engine request itself when this task is cancelled.
        final = await self._final(self._llm.generate(TokensPrompt(prompt_token_ids=prompt_token_ids), params,
                                                     request_id, priority=sampling.priority))
        completions = [
            Completion(text=c.text, token_ids=tuple(c.token_ids), finish_reason=c.finish_reason,
                       first_logprobs={t: lp.logprob for t, lp in c.logprobs[0].items()} if c.logprobs else None)
            for c in sorted(final.outputs, key=lambda c: c.index)
        ]
        return Generation(prompt_tokens=len(final.prompt_token_ids or prompt_token_ids), completions=completions)

    async def classify(self, prompt_token_ids: list[int], request_id: str, priority: int = 0) -> Scored:
        """The classification head's raw logit for the prompt: task ``classify`` with ``use_activation``
        off (vLLM's default applies a sigmoid; verl's reward client turns it off the same way, and the
        service applies the sigmoid itself where a probability is asked for)."""
        from vllm import PoolingParams, TokensPrompt

        params = PoolingParams(task="classify", use_activation=False)
        final = await self._final(self._llm.encode(TokensPrompt(prompt_token_ids=prompt_token_ids), params,
                                                   request_id, priority=priority))
        data = final.outputs.data
        if data.numel() != 1:  # the launch admits only one-label classifiers; say so if one slips through
            raise EngineError(f"the model's classification head gave {data.numel()} values; a scalar reward model "
                              "gives one")
        return Scored(prompt_tokens=len(final.prompt_token_ids or prompt_token_ids), score=float(data.reshape(-1)[0]))

    async def _final(self, outputs: AsyncIterator[Any]) -> Any:
        """The last output of one engine request's stream (``generate`` or ``encode``), its failures mapped:
        ``EngineDead`` when the engine died, ``EngineError`` for this request alone. CancelledError is a
        BaseException, so it passes through and vLLM aborts the request."""
        from vllm.v1.engine.exceptions import EngineDeadError

        final = None
        try:
            async for out in outputs:
                final = out
        except EngineDeadError as exc:
            raise EngineDead(str(exc) or "vLLM engine is dead") from exc
        except Exception as exc:  # EngineGenerateError and request validation errors
            if self._llm.errored:
                raise EngineDead(str(exc) or "vLLM engine is dead") from exc
            raise EngineError(f"{type(exc).__name__}: {exc}") from exc
        if final is None:
            raise EngineError("engine returned no output")
        return final

    async def abort(self, request_ids: list[str]) -> None:
        await self._llm.abort(request_ids)

    async def check_health(self) -> None:
        if self._llm.errored:
            raise EngineDead("vLLM engine is dead")
        try:
            await self._llm.check_health()
        except Exception as exc:
            raise EngineDead(f"vLLM engine health check failed: {exc}") from exc

    @property
    def errored(self) -> bool:
        return bool(self._llm.errored)

    def num_unfinished_requests(self) -> int:
        return self._llm.get_num_unfinished_requests()


@asynccontextmanager
async def open_vllm_engine(engine_args: argparse.Namespace) -> AsyncIterator[VllmEngine]:
    """Start vLLM's engine core for ``engine_args`` and shut it down on exit, whatever happens."""
    from transformers import AutoTokenizer
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.usage.usage_lib import UsageContext
    from vllm.v1.engine.async_llm import AsyncLLM

    if is_cpu_platform():
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", CPU_KVCACHE_GIB_DEFAULT)
    args = AsyncEngineArgs.from_cli_args(engine_args)
    llm = AsyncLLM.from_engine_args(args, usage_context=UsageContext.OPENAI_API_SERVER)
    try:
        cfg = llm.model_config
        tokenizer = AutoTokenizer.from_pretrained(
            cfg.tokenizer, revision=cfg.tokenizer_revision, trust_remote_code=cfg.trust_remote_code
        )
        name = (args.served_model_name[0] if isinstance(args.served_model_name, list)
                else args.served_model_name) or args.model
        yield VllmEngine(llm, tokenizer, str(name))
    finally:
        llm.shutdown()
