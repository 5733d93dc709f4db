"""/docs and /redoc work without internet: their JavaScript and CSS come from the service (service/api/docs.py),
not a CDN, so an air-gapped cluster gets a working page, and the docs stay public when API keys are set.

The in-process checks run in ``make test``. The browser checks (``make docs-check``; LIBRA_BROWSER_TESTS=1)
start the real app on a FakeEngine over a real socket and load /docs in headless Chromium (Debian's package)
with every host but loopback unresolvable and every connection sent to a dead proxy on 127.0.0.1:9. A control
run of FastAPI's default /docs (Swagger UI from a CDN) under the same flags must give a blank page, so a
CDN asset could not have loaded unnoticed. Screenshots land in reports/docs-check/."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html

from service.api.docs import ASSETS_URL, STATIC_DIR
from service.engine.fake import FakeEngine
from tests.helpers import AppServer, build_app_for, make_client, perfect_nano_judge

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ROOT / "reports" / "docs-check"
KEY = "docs-check-key"
BROWSER = pytest.mark.skipif(os.environ.get("LIBRA_BROWSER_TESTS") != "1",
                             reason="headless Chromium with the network cut: make docs-check")
ASSETS = sorted(f"{ASSETS_URL}/{p.relative_to(STATIC_DIR).as_posix()}" for p in STATIC_DIR.rglob("*") if p.is_file())
# Loopback only: no name resolves but 127.0.0.1, and anything not bypassed goes to a port nothing listens on.
OFFLINE = ("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--proxy-server=127.0.0.1:9",
           "--proxy-bypass-list=127.0.0.1")


@pytest.fixture
def nano_engine(nano_tokenizer):
    return FakeEngine(nano_tokenizer, perfect_nano_judge, max_model_len=1024)


# -- in process (make test) -------------------------------------------------------------------------------------

@pytest.mark.parametrize("keys", ["", KEY])
def test_docs_pages_and_assets_are_served_here_and_public(nano_engine, keys):
    with make_client(nano_engine, api_keys=keys) as client:
        pages = {path: client.get(path) for path in ("/docs", "/redoc", "/docs/oauth2-redirect")}
        for path, resp in pages.items():
            assert resp.status_code == 200, path
            assert "text/html" in resp.headers["content-type"]
            assert not re.search(r"(?:src|href)=\"(?:https?:)?//", resp.text), (path, "an off-site asset")
        referenced = set(re.findall(r"(?:src|href)=\"([^\"]+)\"", pages["/docs"].text + pages["/redoc"].text))
        assert {f"{ASSETS_URL}/swagger/swagger-ui-bundle.js", f"{ASSETS_URL}/swagger/swagger-ui.css",
                f"{ASSETS_URL}/redoc/redoc.standalone.js", f"{ASSETS_URL}/fastapi/favicon.png"} <= referenced
        for path in [*ASSETS, "/redoc/logo-mini.svg", "/openapi.json"]:
            assert client.get(path).status_code == 200, path
        assert client.head("/docs").status_code == 200  # a Starlette route, as FastAPI's own docs route is
        assert client.get(f"{ASSETS_URL}/nothing.js").status_code == (401 if keys else 404)
        if keys:  # the API itself still needs a key
            assert client.get("/judges").status_code == 401
    assert {"/docs", "/redoc"}.isdisjoint(build_app_for(nano_engine).openapi()["paths"])


# -- headless Chromium, network cut (make docs-check) -----------------------------------------------------------

def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("no chromium on PATH: `make docs-check` installs Debian's package")
    return path


def browse(url: str, tmp_path: Path, *, screenshot: Path | None = None, network: tuple[str, ...] = OFFLINE) -> str:
    """Load ``url`` in headless Chromium (offline unless ``network`` says otherwise); return the rendered DOM,
    or write a screenshot."""
    action = [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    run = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--window-size=1280,1600", "--virtual-time-budget=5000",
         *network, *action, url],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    if screenshot:
        assert screenshot.is_file(), run.stderr[-2000:]
    return run.stdout


def ink(png: Path) -> tuple[int, float]:
    """(distinct colours, share of pixels that are not white) of a screenshot."""
    from PIL import Image

    with Image.open(png) as img:
        rgb = img.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 24) or []
        width, height = rgb.size
    white = sum(n for n, c in colours if min(c) >= 250)
    return len(colours), 1 - white / (width * height)


@BROWSER
def test_docs_render_in_chromium_with_the_network_cut(nano_engine, tmp_path):
    REPORTS.mkdir(parents=True, exist_ok=True)
    shot = REPORTS / "docs-offline.png"
    shot.unlink(missing_ok=True)
    # API keys on: the page, /openapi.json and the assets must all load without one.
    with AppServer(build_app_for(nano_engine, api_keys=KEY)) as server:
        assert httpx.get(server.url_for("judges")).status_code == 401
        dom = browse(server.url_for("docs"), tmp_path)
        browse(server.url_for("docs"), tmp_path, screenshot=shot)
        redoc = browse(server.url_for("redoc"), tmp_path)
    # Swagger UI rendered the document: the title, the version and every operation.
    assert "Libra Serve" in dom and 'class="swagger-ui"' in dom
    for path in ("/score", "/get_reward", "/slime/reward", "/judges", "/health", "/ready"):
        assert f'data-path="{path}"' in dom, path
    assert "opblock-post" in dom and "opblock-get" in dom
    # ReDoc too (its operations are listed in its side menu).
    assert "redoc-wrap" in redoc and "/score" in redoc
    colours, share = ink(shot)
    print(f"[docs-check] {shot.relative_to(ROOT)}: {colours} colours, {share:.1%} not white")
    assert colours > 50 and share > 0.05, (colours, share)


@BROWSER
def test_control_fastapi_default_cdn_docs_are_blank_with_the_network_cut(tmp_path):
    """The flags really cut the network: FastAPI's default /docs, whose Swagger UI comes from a CDN, renders nothing."""
    REPORTS.mkdir(parents=True, exist_ok=True)
    shot = REPORTS / "docs-cdn-control.png"
    shot.unlink(missing_ok=True)
    app = FastAPI(title="CDN control")

    @app.get("/ping")
    def ping() -> dict:
        return {"ok": True}

    with AppServer(app) as server:
        page = httpx.get(server.url_for("docs")).text
        assert re.search(r'src="https://[^"]+swagger-ui-bundle\.js"', page)  # the default really is a CDN
        dom = browse(server.url_for("docs"), tmp_path)
        browse(server.url_for("docs"), tmp_path, screenshot=shot)
    assert 'data-path="/ping"' not in dom and "opblock" not in dom
    colours, share = ink(shot)
    print(f"[docs-check] {shot.relative_to(ROOT)}: {colours} colours, {share:.1%} not white")
    assert share < 0.001, (colours, share)


@BROWSER
def test_control_the_cut_blocks_a_host_that_is_reachable(nano_engine, tmp_path):
    """The blank page above is the flags' doing, not this machine's lack of internet: Swagger UI's assets on an
    off-loopback host name that does answer (mapped onto this app's port) render without the flags, not with."""
    with AppServer(build_app_for(nano_engine)) as assets:
        cdn = f"http://cdn.example:{assets.port}{ASSETS_URL}/swagger"
        app = FastAPI(title="Remote assets", docs_url=None)

        @app.get("/ping")
        def ping() -> dict:
            return {"ok": True}

        @app.get("/docs", include_in_schema=False)
        def docs():
            return get_swagger_ui_html(openapi_url="/openapi.json", title="Remote assets",
                                       swagger_js_url=f"{cdn}/swagger-ui-bundle.js",
                                       swagger_css_url=f"{cdn}/swagger-ui.css")

        with AppServer(app) as server:
            mapped = ("--host-resolver-rules=MAP cdn.example 127.0.0.1",)
            online = browse(server.url_for("docs"), tmp_path, network=mapped)
            offline = browse(server.url_for("docs"), tmp_path)
    assert 'data-path="/ping"' in online
    assert 'data-path="/ping"' not in offline and "opblock" not in offline
