"""What the Ray Serve tests share (fixtures are in conftest.py; the held-out items come from tests/helpers.py): a
client transport that counts the statuses it saw, and the session's replicas and their engine-core processes."""

from __future__ import annotations

from collections import Counter

import httpx

ADMISSION_BUDGET = 48  # per replica in the session's application: small, so a burst saturates a replica
SERVE_ARGS = ["--max-num-seqs", "16", "--max-model-len", "1024"]  # docker/ray/serve.cpu.yaml's (checked)


class CountingTransport(httpx.AsyncBaseTransport):
    """httpx's transport, counting each response's status (and the Retry-After of every 429 and 503)."""

    def __init__(self):
        self.inner = httpx.AsyncHTTPTransport()
        self.statuses: Counter[int] = Counter()
        self.retry_after: list[tuple[int, str | None]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.statuses[response.status_code] += 1
        if response.status_code in (429, 503):
            self.retry_after.append((response.status_code, response.headers.get("retry-after")))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def replicas() -> dict[str, int]:
    """The live LibraJudge replicas of the session's Ray: replica id -> pid of its actor process."""
    from ray.util.state import list_actors

    actors = list_actors(filters=[("class_name", "=", "ServeReplica:libra:LibraJudge"), ("state", "=", "ALIVE")],
                         detail=True, raise_on_missing_output=False)
    return {a.name.rsplit("#", 1)[-1]: a.pid for a in actors}


def engine_core(replica_pid: int):
    """The vLLM engine-core process a replica started (a child process named VLLM::EngineCore)."""
    import psutil

    cores = [p for p in psutil.Process(replica_pid).children(recursive=True) if "EngineCore" in _title(p)]
    assert len(cores) == 1, f"replica pid {replica_pid}: engine cores {cores}"
    return cores[0]


def _title(process) -> str:
    import psutil

    try:
        return " ".join(process.cmdline()) or process.name()
    except psutil.Error:
        return ""


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting for its parent does not)."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
