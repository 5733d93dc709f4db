"""Service settings: one place, every field documented, read from ``LIBRA_*`` environment variables.

Engine settings are vLLM's own flags (``--model``, ``--max-model-len``, ...), which pass through the
command line unchanged so the service never lags behind the engine's options. For containers, where
the command line is fixed, ``LIBRA_MODEL`` and ``LIBRA_VLLM_ARGS`` carry them; flags given on the
command line win.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

NANO_JUDGE_PATH = Path(__file__).resolve().parent / "models" / "nano-judge"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIBRA_", extra="ignore")

    model: str | None = Field(None, description="Judge model (a path or hub id) when --model is not given; "
                              "unset: the bundled nano judge.")
    vllm_args: str = Field("", description="Extra vLLM engine flags, shell-quoted, placed before the command "
                           "line's (e.g. '--tensor-parallel-size 2 --max-model-len 16384').")
    host: str = Field("127.0.0.1", description="Address to bind. Loopback by default.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port to listen on.")
    judge: str | None = Field(
        None,
        description="Default judge profile. Unset: 'nano' for the bundled nano judge, 'libra' otherwise.",
    )
    judges_dir: Path | None = Field(None, description="Extra directory of judge profiles (*.toml).")
    max_items_per_request: int = Field(4096, ge=1, description="Most items one /score request may carry.")
    max_body_bytes: int = Field(64 * 2**20, ge=1024, description="Largest request body accepted (413 beyond).")
    max_text_chars: int = Field(200_000, ge=1, description="Longest question/response/reference, in characters; "
                                "a longer one makes its item too_long (the request is still answered).")
    admission_budget: int = Field(
        8192, ge=1, description="Items queued + in flight across all requests; beyond it new requests get 429.")
    default_timeout_s: float = Field(600.0, gt=0, description="Deadline of a request that sets no timeout_s.")
    max_timeout_s: float = Field(3600.0, gt=0, description="Largest timeout_s a request may ask for.")
    trainer_timeout_s: float = Field(
        100.0, gt=0, description="Deadline of the trainer endpoints (/get_reward, /slime/*), below their clients' "
        "own timeouts (slime 120 s, OpenRLHF 180 s): past it an item gets the failure reward, flagged as failed, "
        "instead of the client giving up and retrying from nothing.")
    api_keys: str = Field("", description="Comma-separated API keys; empty: no auth. Prefer api_keys_file.")
    api_keys_file: Path | None = Field(None, description="File with one API key per line.")
    metrics_auth: bool = Field(False, description="Require an API key for /metrics too (when keys are set).")
    ready_probe_interval_s: float = Field(2.0, gt=0, description="How often /ready's one-token probe runs.")
    ready_max_age_s: float = Field(10.0, gt=0, description="/ready fails when no probe succeeded this recently.")
    shutdown_grace_s: float = Field(30.0, ge=0, description="On SIGTERM, how long in-flight requests may finish.")
    verify_workers: int = Field(2, ge=0, description="math-verify worker processes (0 turns verify modes off).")
    verify_timeout_s: float = Field(2.0, gt=0, description="Hard limit per verified item; its worker is killed.")
    failure_reward: float = Field(0.0, description="Reward the OpenRLHF/slime endpoints return for an item the "
                                  "judge could not score (reported as failed).")
    json_logs: bool = Field(False, description="Log one JSON object per line instead of plain text.")
    max_samples: int = Field(16, ge=1, description="Most samples (k-sample voting) one item may ask for.")
    max_rubric_criteria: int = Field(
        32, ge=1, description="Most criteria one item's rubric may have (RaR's rubrics have 7-20); an item over it "
        "is invalid.")
    cache_entries: int = Field(100_000, ge=0, description="Result cache size in entries (0 turns it off).")
    cache_mb: int = Field(256, ge=0, description="Result cache size bound in MiB.")
    group_priming: bool = Field(
        True, description="Prefill a question's shared prompt prefix once before its group's items.")
    log_level: str = Field("info", description="Log level of the service and uvicorn.")
    verdict_prob: bool = Field(
        False, description="Read every natural verdict's label probabilities (verdict_prob) by default: one more "
        "engine request per verdict, queued behind the judgments (off: a streamed batch's first result would "
        "wait for the whole batch). Forced verdicts carry it for free; reward_mode prob and a request's "
        "verdict_prob: true read it regardless.")
    small_request_items: int = Field(
        0, ge=0, description="Requests of at most this many items get small_request_priority when they set no "
        "priority (0: off). Takes effect only under vLLM's --scheduling-policy priority.")
    small_request_priority: int = Field(-10, ge=-1000, le=1000, description="Default priority of small requests.")

    def resolve_judge(self, model: str) -> str:
        if self.judge:
            return self.judge
        return "nano" if self.is_nano(model) else "libra"

    @staticmethod
    def is_nano(model: str) -> bool:
        """Whether ``model`` names the bundled nano judge."""
        try:
            return Path(model).resolve() == NANO_JUDGE_PATH
        except OSError:
            return False

    def api_key_list(self) -> list[str]:
        keys = [k.strip() for k in self.api_keys.split(",") if k.strip()]
        if self.api_keys_file:
            text = Path(self.api_keys_file).read_text(encoding="utf-8")
            keys += [k.strip() for k in text.splitlines() if k.strip() and not k.startswith("#")]
        return keys

    def limits(self) -> dict:
        """What GET /limits reports."""
        return {name: getattr(self, name) for name in (
            "max_items_per_request", "max_body_bytes", "max_text_chars", "max_samples", "max_rubric_criteria",
            "admission_budget",
            "default_timeout_s", "max_timeout_s", "trainer_timeout_s", "small_request_items",
            "small_request_priority")}

    @property
    def extra_judge_dirs(self) -> tuple[Path, ...]:
        return (self.judges_dir,) if self.judges_dir else ()
