"""/docs (Swagger UI) and /redoc with their JavaScript, CSS and favicon served by this service, not a CDN,
so the pages work on a cluster without internet (tests/browser/test_offline_docs.py proves it in Chromium).

The files come from the ``fastapi-standalone-docs`` wheel (swagger-ui-dist and Redoc's standalone bundle,
each beside its license); only its files are used, not its patching of FastAPI's module globals. The pages
are FastAPI's own (``get_swagger_ui_html``, ``get_redoc_html``, the same titles, root_path handling and
GET/HEAD routes as ``FastAPI.setup``), with only the asset URLs changed; Redoc's Google Fonts link is dropped.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = "/docs/assets"  # the wheel's static/ tree: swagger/, redoc/, fastapi/ (favicon), licenses included
STATIC_DIR = Path(str(files("fastapi_standalone_docs") / "static"))


def install_docs(app: FastAPI) -> set[str]:
    """Add the docs pages and their assets to ``app`` (built with ``docs_url=None, redoc_url=None``);
    returns every path they serve, for the API-key middleware's public set."""
    assert app.docs_url is None and app.redoc_url is None and app.openapi_url, "build the app without FastAPI's docs"
    openapi_path, oauth2_path = app.openapi_url, app.swagger_ui_oauth2_redirect_url or f"{DOCS_URL}/oauth2-redirect"

    def root(request: Request) -> str:
        return request.scope.get("root_path", "").rstrip("/")

    async def swagger_ui(request: Request) -> HTMLResponse:
        prefix = root(request)
        return get_swagger_ui_html(
            openapi_url=prefix + openapi_path,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{prefix}{ASSETS_URL}/swagger/swagger-ui-bundle.js",
            swagger_css_url=f"{prefix}{ASSETS_URL}/swagger/swagger-ui.css",
            swagger_favicon_url=f"{prefix}{ASSETS_URL}/fastapi/favicon.png",
            oauth2_redirect_url=prefix + oauth2_path,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    async def oauth2_redirect(request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        prefix = root(request)
        return get_redoc_html(
            openapi_url=prefix + openapi_path,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{prefix}{ASSETS_URL}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{prefix}{ASSETS_URL}/fastapi/favicon.png",
            with_google_fonts=False,
        )

    async def redoc_logo(request: Request) -> FileResponse:
        # The wheel's Redoc bundle asks for its footer logo at the page's own path + /logo-mini.svg.
        return FileResponse(STATIC_DIR / "redoc" / "logo-mini.svg")

    # Starlette routes (GET and HEAD), as FastAPI adds its own docs routes; none is in the OpenAPI document.
    app.add_route(DOCS_URL, swagger_ui, include_in_schema=False)
    app.add_route(oauth2_path, oauth2_redirect, include_in_schema=False)
    app.add_route(REDOC_URL, redoc, include_in_schema=False)
    app.add_route(f"{REDOC_URL}/logo-mini.svg", redoc_logo, include_in_schema=False)
    app.mount(ASSETS_URL, StaticFiles(directory=STATIC_DIR), name="docs-assets")

    assets = {f"{ASSETS_URL}/{p.relative_to(STATIC_DIR).as_posix()}" for p in STATIC_DIR.rglob("*") if p.is_file()}
    return {DOCS_URL, oauth2_path, REDOC_URL, f"{REDOC_URL}/logo-mini.svg", openapi_path} | assets
