"""Run ``libra-serve`` as a child process on a free port and wait until it serves.

Used by ``libra-serve bench/label/traces --serve``, the integration tests (the real server, the real
engine, plain HTTP), the benchmarks and the nano judge's evaluation, so all exercise exactly what a
user runs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``with ServerProcess(["--judge", "nano"]) as server: httpx.post(server.url + "/score", ...)``."""

    def __init__(self, args: list[str] | None = None, log_path: Path | None = None, start_timeout_s: float = 600,
                 env: dict[str, str] | None = None, program: list[str] | None = None):
        """``program``: another server that takes ``--host``/``--port`` and serves ``/health`` (the
        benchmark runs vLLM's own OpenAI server this way); default ``libra-serve serve``."""
        self.args = list(args or [])
        self.program = list(program or [sys.executable, "-m", "service.cli", "serve"])
        self.env = {**os.environ, **(env or {})}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen | None = None
        self._log = None

    @classmethod
    def attached(cls, url: str) -> ServerProcess:
        """A server someone else started and stops (``url`` like ``http://127.0.0.1:8000``): the same
        ``url``/``url_for``/``client``, no process of ours."""
        server = cls()
        server.url = url.rstrip("/")
        server.port = int(server.url.rsplit(":", 1)[1])
        return server

    def url_for(self, *parts: str) -> str:
        """``url_for("slime", "reward")`` -> ``http://127.0.0.1:PORT/slime/reward``."""
        return "/".join([self.url, *(p.strip("/") for p in parts)])

    def client(self, **kwargs) -> httpx.Client:
        """An httpx client with this server as its base URL."""
        return httpx.Client(base_url=self.url, **kwargs)

    def __enter__(self) -> ServerProcess:
        cmd = [*self.program, "--host", "127.0.0.1", "--port", str(self.port), *self.args]
        self._log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.program[-1]} exited with {self.proc.returncode} during start; "
                                   f"log: {self.log_path}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.__exit__(None, None, None)
        raise TimeoutError(f"{self.program[-1]} did not become healthy in {self.start_timeout_s}s; "
                           f"log: {self.log_path}")

    def __exit__(self, *exc) -> None:
        children = []
        if self.proc and self.proc.poll() is None:
            try:
                children = psutil.Process(self.proc.pid).children(recursive=True)
            except psutil.Error:
                pass
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # A server that did not shut down cleanly must not leave its engine core running.
        for child in children:
            try:
                child.wait(timeout=10)
            except psutil.TimeoutExpired:
                child.kill()
            except psutil.Error:
                pass
        if self._log not in (None, subprocess.DEVNULL):
            self._log.close()
