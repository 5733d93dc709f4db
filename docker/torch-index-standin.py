"""A loopback stand-in for PyTorch's CPU wheel index, for testing the install without internet.

    python docker/torch-index-standin.py [--wheels /opt/wheels] [--log FILE] [--port 0]

Serves the wheels of a directory (this machine's /opt/wheels holds torch 2.13.0+cpu) laid out like
https://download.pytorch.org/whl/cpu: a PEP 503 root ``/whl/cpu/``, one page per project
(``/whl/cpu/torch/``) whose links point at ``/whl/cpu/<wheel>#sha256=...`` with PEP 658/714 metadata
attributes, and ``/whl/cpu/<wheel>.metadata``. Anything else is 404, so pip finds every other package
on PyPI: it is an *extra* index, as PyTorch's is for the install. The first line on stdout is the
index URL (give it to LIBRA_TORCH_INDEX); every request is appended to --log as ``GET /path status``.
Used by tests/install/ and docker/image-cpu-check.sh.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import re
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote

PREFIX = "/whl/cpu"


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def wheel_metadata(path: Path) -> bytes:
    with zipfile.ZipFile(path) as zf:
        [name] = [n for n in zf.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
        return zf.read(name)


class Index:
    def __init__(self, wheels: Path):
        self.files: dict[str, Path] = {}  # file name -> path
        self.metadata: dict[str, bytes] = {}  # file name -> its METADATA
        self.projects: dict[str, list[str]] = {}  # normalized project -> anchor lines
        for path in sorted(wheels.glob("*.whl")):
            meta = wheel_metadata(path)
            meta_sha = hashlib.sha256(meta).hexdigest()
            self.files[path.name] = path
            self.metadata[path.name] = meta
            href = f"{PREFIX}/{quote(path.name)}#sha256={sha256(path)}"
            self.projects.setdefault(normalize(path.name.split("-")[0]), []).append(
                f'    <a href="{html.escape(href)}" data-dist-info-metadata="sha256={meta_sha}" '
                f'data-core-metadata="sha256={meta_sha}">{html.escape(path.name)}</a><br/>'
            )
        if not self.files:
            raise SystemExit(f"torch-index-standin: no wheels in {wheels}")

    def page(self, title: str, lines: list[str]) -> bytes:
        return ("<!DOCTYPE html>\n<html>\n  <body>\n" f"    <h1>{html.escape(title)}</h1>\n"
                + "\n".join(lines) + "\n  </body>\n</html>\n").encode()

    def resolve(self, path: str) -> tuple[bytes | Path, str] | None:
        path = unquote(path.split("?", 1)[0])
        if path.rstrip("/") == PREFIX:
            return self.page("Simple index", [f'    <a href="{PREFIX}/{p}/">{p}</a><br/>' for p in self.projects]), \
                "text/html"
        if not path.startswith(PREFIX + "/"):
            return None
        rest = path[len(PREFIX) + 1:].strip("/")
        if normalize(rest) in self.projects:
            return self.page(f"Links for {normalize(rest)}", self.projects[normalize(rest)]), "text/html"
        if rest in self.files:
            return self.files[rest], "application/octet-stream"
        if rest.endswith(".metadata") and rest[: -len(".metadata")] in self.metadata:
            return self.metadata[rest[: -len(".metadata")]], "text/plain"
        return None


def serve(index: Index, host: str, port: int, log_path: Path | None) -> ThreadingHTTPServer:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # the access log is ours (--log)
            pass

        def _record(self, status: int) -> None:
            if log_path is not None:
                with lock, log_path.open("a") as f:
                    f.write(f"{self.command} {self.path} {status}\n")

        def _answer(self, body_too: bool) -> None:
            found = index.resolve(self.path)
            if found is None:
                self.send_error(404)
                self._record(404)
                return
            body, ctype = found
            size = body.stat().st_size if isinstance(body, Path) else len(body)
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            if body_too:
                if isinstance(body, Path):
                    with body.open("rb") as f:
                        while block := f.read(1 << 20):
                            self.wfile.write(block)
                else:
                    self.wfile.write(body)
            self._record(200)

        def do_GET(self):  # noqa: N802
            self._answer(True)

        def do_HEAD(self):  # noqa: N802
            self._answer(False)

    return ThreadingHTTPServer((host, port), Handler)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheels", type=Path, default=Path("/opt/wheels"), help="directory of wheels to serve")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0: any free port")
    ap.add_argument("--log", type=Path, help="append one line per request here")
    args = ap.parse_args(argv)
    index = Index(args.wheels)
    server = serve(index, args.host, args.port, args.log)
    print(f"http://{args.host}:{server.server_address[1]}{PREFIX}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
