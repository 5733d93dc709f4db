"""A real nginx (Debian's package) with docker/nginx.conf in front of a server, for the tests that check the
replicas' load balancer: the shipped config rendered with a local upstream and port, nginx run as a
non-daemon child with its paths in a temporary directory, and a timed streamed /score through it.

Used by tests/unit/test_nginx_config.py (the app on a FakeEngine) and tests/integration/test_nginx_streaming.py
(the live server); a support module, so no test module imports another.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
NGINX_CONF = ROOT / "docker" / "nginx.conf"
JUNK = {"id": "junk", "question": "What is 1 + 1?", "response": "Solution"}  # no answer: decided at once


def nginx_binary() -> str:
    path = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")  # not on a non-root user's PATH
    if path is None:
        message = "nginx is not installed (Debian: apt-get install nginx; make deploy-tools does it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def render_nginx_conf(upstream_port: int, listen_port: int, prefix: Path) -> str:
    """docker/nginx.conf as it would run here: its replicas replaced by one at 127.0.0.1:``upstream_port``,
    listening on 127.0.0.1:``listen_port``, its logs and temporary files under ``prefix`` (Debian's nginx
    has absolute default paths under /var); everything else is the shipped file."""
    text = NGINX_CONF.read_text()
    servers = re.findall(r"^( *)server libra-\d+:8000( [^;]*);\n", text, re.M)
    assert servers, "docker/nginx.conf names no libra-N:8000 replica"
    indent, params = servers[0]
    text = re.sub(r"^ *server libra-\d+:8000[^;]*;\n", "", text, flags=re.M)
    text = text.replace("least_conn;\n", f"least_conn;\n{indent}server 127.0.0.1:{upstream_port}{params};\n", 1)
    text, listens = re.subn(r"^( *)listen 8000;", rf"\1listen 127.0.0.1:{listen_port};", text, flags=re.M)
    assert listens == 1, "docker/nginx.conf should listen on 8000 once"
    local = "".join(f"    {directive} {prefix / name};\n" for directive, name in (
        ("access_log", "access.log"), ("client_body_temp_path", "client_body"), ("proxy_temp_path", "proxy"),
        ("fastcgi_temp_path", "fastcgi"), ("uwsgi_temp_path", "uwsgi"), ("scgi_temp_path", "scgi")))
    text = re.sub(r"^http \{\n", lambda m: m.group(0) + local, text, count=1, flags=re.M)
    return text


class LocalNginx:
    """``with LocalNginx(upstream_port) as lb: httpx.get(lb.url + "/health")``: a real nginx, not daemonised
    (a child of this process, stopped on exit), on a free loopback port, with the rendered shipped config and
    its pid, logs and temporary files in a directory of its own."""

    def __init__(self, upstream_port: int):
        from libra_eval.server_process import free_port

        self.binary = nginx_binary()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.upstream_port = upstream_port
        self.dir: Path | None = None
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> LocalNginx:
        # Workers drop root to "nobody", which must reach the temporary directories: not under pytest's 0700 tmp.
        self.dir = Path(tempfile.mkdtemp(prefix="libra-nginx-"))
        self.dir.chmod(0o755)
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self) -> None:
        conf = self.dir / "nginx.conf"
        conf.write_text(render_nginx_conf(self.upstream_port, self.port, self.dir))
        base = [self.binary, "-p", str(self.dir), "-c", str(conf), "-e", str(self.dir / "error.log"),
                "-g", f"daemon off; pid {self.dir / 'nginx.pid'};"]
        check = subprocess.run([*base, "-t"], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        # Its own process group: the master and its workers, ended together by that group's id if need be.
        self.proc = subprocess.Popen(base, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.proc.returncode}: {self.error_log()}")
            try:
                httpx.get(self.url + "/health", timeout=2)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise TimeoutError(f"nginx did not answer in 20 s: {self.error_log()}")

    def error_log(self) -> str:
        path = self.dir / "error.log" if self.dir else None
        return path.read_text() if path and path.exists() else ""

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: nginx's fast shutdown, workers included
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)


def timed_stream(url: str, items: list[dict], timeout_s: float = 300) -> tuple[httpx.Headers, list[tuple[float, dict]]]:
    """POST a streamed /score; each line with the seconds from the request to its arrival."""
    start = time.perf_counter()
    arrivals = []
    with httpx.stream("POST", url + "/score", json={"items": items, "stream": True, "cache": False},
                      timeout=timeout_s) as resp:
        assert resp.status_code == 200, resp.read()
        for line in resp.iter_lines():
            if line.strip():
                arrivals.append((time.perf_counter() - start, json.loads(line)))
        return resp.headers, arrivals
