"""The loop the offline commands share: score items through a live service with the project's client,
append each finished result to a JSONL log as it arrives, skip what a previous run finished, show a
progress bar with an ETA.

A run's directory holds ``run.json`` (what was asked: data file, judge and options); resuming with
other options would mix two runs' results, so it is refused unless ``--fresh`` starts over. Items the
client could not get a result for after every retry are not logged: they are counted, reported, and
scored by the next run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shlex
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from libra_client import AsyncLibraClient, ScoredItem


class RunError(RuntimeError):
    """The run cannot go on (wrong options for the directory, unknown judge, unreachable service)."""


class ResultLog:
    """Append-only JSONL of finished records keyed by ``key``. A torn last line (the previous run was
    killed mid-write) is dropped and its item scored again."""

    def __init__(self, path: Path):
        self.path = path

    def load(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        records: dict[str, dict[str, Any]] = {}
        good_bytes = 0
        with open(self.path, "rb") as fh:
            for line in fh:
                try:
                    record = json.loads(line)
                except ValueError:
                    break
                if not line.endswith(b"\n") or not isinstance(record, dict) or "key" not in record:
                    break
                records[record["key"]] = record
                good_bytes += len(line)
        if good_bytes != self.path.stat().st_size:
            with open(self.path, "r+b") as fh:
                fh.truncate(good_bytes)
        return records

    def append(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
            fh.flush()
            os.fsync(fh.fileno())


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_manifest(command: str, data: str, options: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """What a run is: the command, its data file (path and content hash), the request options and any
    command-specific settings. A run directory only resumes a run with the same manifest."""
    return {"command": command, "data": str(Path(data).resolve()), "data_sha256": file_sha256(Path(data)),
            "options": options, **extra}


def prepare_run_dir(out: Path, manifest: dict[str, Any], logs: list[Path], fresh: bool) -> None:
    """Create ``out``, or check that it holds a run of the same data and options."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "run.json"
    if fresh:
        for log in logs:
            log.unlink(missing_ok=True)
    elif path.exists() and any(log.exists() for log in logs):
        before = json.loads(path.read_text(encoding="utf-8"))
        changed = sorted(k for k in set(before) | set(manifest) if before.get(k) != manifest.get(k))
        if changed:
            raise RunError(f"{out} holds a run with different {', '.join(changed)}; resume with the same options, "
                           "or pass --fresh to start over (or use another --out)")
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


@dataclass
class Job:
    key: str
    item: dict[str, Any]  # what /score gets
    meta: dict[str, Any] = field(default_factory=dict)  # carried into the record


@dataclass
class RunStats:
    total: int
    done_before: int = 0
    scored: int = 0
    failed: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def items_per_s(self) -> float | None:
        return self.scored / self.seconds if self.seconds > 0 and self.scored else None


ToRecord = Callable[[Job, ScoredItem], dict[str, Any]]


async def score_jobs(client: AsyncLibraClient, jobs: list[Job], options: dict[str, Any], log: ResultLog,
                     to_record: ToRecord, *, desc: str, chunk_size: int, progress: bool = True
                     ) -> tuple[dict[str, dict[str, Any]], RunStats]:
    """Score the jobs the log does not hold yet; returns every job's record (old and new) and stats."""
    done = log.load()
    keys = {j.key for j in jobs}
    records = {k: r for k, r in done.items() if k in keys}
    todo = [j for j in jobs if j.key not in records]
    stats = RunStats(total=len(jobs), done_before=len(records))
    bar = tqdm(total=len(jobs), initial=len(records), desc=desc, unit="item", disable=not progress,
               dynamic_ncols=True, smoothing=0.1)
    t0 = time.perf_counter()

    async def one(chunk: list[Job]) -> tuple[list[Job], list[ScoredItem]]:
        return chunk, await client.score([j.item for j in chunk], **options)

    try:
        tasks = [asyncio.ensure_future(one(todo[i:i + chunk_size])) for i in range(0, len(todo), chunk_size)]
        try:
            for next_done in asyncio.as_completed(tasks):
                chunk, results = await next_done
                new = []
                for job, result in zip(chunk, results, strict=True):
                    if result.status == "client_error":
                        stats.failed += 1
                        if len(stats.failures) < 5:
                            stats.failures.append(f"{job.key}: {result.error}")
                        continue
                    record = to_record(job, result)
                    records[job.key] = record
                    new.append(record)
                log.append(new)
                stats.scored += len(new)
                bar.update(len(chunk))
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        bar.close()
    stats.seconds = time.perf_counter() - t0
    return records, stats


def run_jobs(target: Target, args: Any, jobs: list[Job], options: dict[str, Any], log_path: Path,
             to_record: ToRecord, desc: str) -> tuple[dict[str, dict[str, Any]], RunStats]:
    """``score_jobs`` with a client for ``target`` and the command's chunking/concurrency flags."""
    async def go():
        async with AsyncLibraClient(target.url, api_key=target.api_key, chunk_size=args.chunk_size,
                                    max_concurrency=args.concurrency) as client:
            return await score_jobs(client, jobs, options, ResultLog(log_path), to_record, desc=desc,
                                    chunk_size=args.chunk_size, progress=not args.no_progress)

    return asyncio.run(go())


@dataclass
class Target:
    url: str
    api_key: str | None


@contextlib.contextmanager
def service(url: str, api_key: str | None, serve: bool, serve_args: str, out: Path) -> Iterator[Target]:
    """The service to score against: ``url``, or one started here (``--serve``) for the run."""
    if not serve:
        yield Target(url.rstrip("/"), api_key)
        return
    from libra_eval.server_process import ServerProcess

    log = out / "serve.log"
    print(f"starting libra-serve {serve_args} (log: {log}) ...", flush=True)
    with ServerProcess(shlex.split(serve_args), log_path=log) as server:
        yield Target(server.url, None)


def judge_info(target: Target, judge: str | None) -> tuple[str, dict[str, Any]]:
    """(model name, the judge profile's description) from the service's /judges."""
    headers = {"Authorization": f"Bearer {target.api_key}"} if target.api_key else {}
    try:
        resp = httpx.get(target.url + "/judges", headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        raise RunError(f"cannot reach the service at {target.url}: {exc} (start one, or pass --serve)") from None
    if resp.status_code != 200:
        raise RunError(f"{target.url}/judges answered HTTP {resp.status_code}: {resp.text[:300]}")
    body = resp.json()
    name = judge or body["default"]
    profiles = {j["name"]: j for j in body["judges"]}
    if name not in profiles:
        raise RunError(f"the service has no judge {name!r}; it offers {', '.join(sorted(profiles))}")
    return body.get("model", "unknown"), profiles[name]


def request_options(args: Any, **extra: Any) -> dict[str, Any]:
    """The /score options a command's flags ask for (unset flags leave the server's defaults)."""
    options = {"judge": args.judge, "samples": args.samples, "temperature": args.temperature,
               "max_thinking_tokens": args.max_thinking_tokens, "seed": args.seed, "mode": args.mode,
               "trust_rule": getattr(args, "trust_rule", None), "timeout_s": args.timeout_s, **extra}
    return {k: v for k, v in options.items() if v is not None}
