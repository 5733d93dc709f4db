"""One error envelope and one status table for every error the API returns.

Every error body is ``{"error": {"code": ..., "message": ..., "param": ...}}``, validation errors
included, so a client needs one parser for all of them. The exceptions the layers below raise are
mapped here too: ``EngineDead`` (engine/) and ``NotServing`` (lifecycle.py) are 503s with
``Retry-After``. The one answer without a body is ``ClientClosed``'s 499: nobody is left to read it.
"""

from __future__ import annotations

import json
from enum import StrEnum

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Send

from service.engine.base import EngineDead
from service.lifecycle import NotServing

CLIENT_CLOSED = 499  # nginx's status for a client that closed the connection before the answer


class ErrorCode(StrEnum):
    invalid_json = "invalid_json"  # the body is not JSON (or not UTF-8)
    unauthorized = "unauthorized"  # API keys are configured and none matched
    not_found = "not_found"
    method_not_allowed = "method_not_allowed"
    payload_too_large = "payload_too_large"  # the body exceeds max_body_bytes
    unsupported_media_type = "unsupported_media_type"  # not application/json
    invalid_request = "invalid_request"  # validation: param names the field
    rate_limited = "rate_limited"  # the admission budget is full; retry after Retry-After seconds
    internal_error = "internal_error"
    engine_unavailable = "engine_unavailable"  # not ready, dead, or shutting down; Retry-After
    http_error = "http_error"  # any other HTTP error Starlette raises; its status is the exception's


STATUS = {
    ErrorCode.invalid_json: 400,
    ErrorCode.unauthorized: 401,
    ErrorCode.not_found: 404,
    ErrorCode.method_not_allowed: 405,
    ErrorCode.payload_too_large: 413,
    ErrorCode.unsupported_media_type: 415,
    ErrorCode.invalid_request: 422,
    ErrorCode.rate_limited: 429,
    ErrorCode.internal_error: 500,
    ErrorCode.engine_unavailable: 503,
}


class ApiError(Exception):
    def __init__(self, code: ErrorCode, message: str, param: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.code, self.message, self.param, self.headers = code, message, param, headers


class ClientClosed(Exception):
    """The client went away before its answer; its engine work has been aborted."""


def error_body(code: ErrorCode, message: str, param: str | None = None, status: int | None = None
               ) -> tuple[int, dict]:
    """The status (``STATUS[code]`` unless given) and the envelope."""
    return status or STATUS[code], {"error": {"code": code.value, "message": message, "param": param}}


def error_response(code: ErrorCode, message: str, param: str | None = None,
                   headers: dict[str, str] | None = None, status: int | None = None) -> JSONResponse:
    status, body = error_body(code, message, param, status)
    return JSONResponse(body, status_code=status, headers=headers)


async def send_error(send: Send, code: ErrorCode, message: str, param: str | None = None,
                     headers: dict[str, str] | None = None) -> None:
    """The envelope sent straight over ASGI, for middleware that answers before any route runs."""
    status, body = error_body(code, message, param)
    raw = json.dumps(body).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    hdrs += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": raw})


def _loc_to_param(loc: tuple) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts)


async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
    if first.get("type") == "json_invalid":
        return error_response(ErrorCode.invalid_json, f"request body is not valid JSON: {first.get('msg')}")
    if first.get("type") == "missing" and tuple(first.get("loc", ())) == ("body",):
        return error_response(ErrorCode.invalid_json, 'request body is empty or null; send {"items": [...]}')
    param = _loc_to_param(tuple(first.get("loc", ())))
    messages = [f"{_loc_to_param(tuple(e.get('loc', ()))) or 'body'}: {e.get('msg')}" for e in errors[:5]]
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return error_response(ErrorCode.invalid_request, "; ".join(messages) + more, param or None)


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    headers = dict(exc.headers or {})
    if exc.status_code == 400:  # FastAPI could not decode the body (e.g. invalid UTF-8)
        return error_response(ErrorCode.invalid_json, f"request body is not valid UTF-8 JSON ({exc.detail})",
                              headers=headers)
    if exc.status_code == 405:
        # RFC 9110: a 405 lists the methods the resource does support.
        headers["Allow"] = allowed_methods(request) or headers.get("Allow", "")
    code = {404: ErrorCode.not_found, 405: ErrorCode.method_not_allowed}.get(exc.status_code, ErrorCode.http_error)
    return error_response(code, str(exc.detail), headers=headers, status=exc.status_code)


def allowed_methods(request: Request) -> str:
    """Every method some route serves at this request's path, sorted: the 405's ``Allow`` header.
    (Starlette names only the first route whose path matched, in set order.)"""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))


async def _api(_: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.code, exc.message, exc.param, exc.headers)


async def _engine_dead(_: Request, exc: EngineDead) -> JSONResponse:
    return error_response(ErrorCode.engine_unavailable, f"the judge engine is unavailable: {exc}",
                          headers={"Retry-After": "30"})


async def _not_serving(_: Request, exc: NotServing) -> JSONResponse:
    return error_response(ErrorCode.engine_unavailable, exc.message, headers={"Retry-After": str(exc.retry_after)})


async def _client_closed(_: Request, __: ClientClosed) -> Response:
    return Response(status_code=CLIENT_CLOSED)


async def _internal(_: Request, exc: Exception) -> JSONResponse:
    return error_response(ErrorCode.internal_error, f"internal error: {type(exc).__name__}")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(ApiError, _api)
    app.add_exception_handler(EngineDead, _engine_dead)
    app.add_exception_handler(NotServing, _not_serving)
    app.add_exception_handler(ClientClosed, _client_closed)
    app.add_exception_handler(Exception, _internal)
