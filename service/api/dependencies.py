"""Route dependencies: checks that belong to a route, declared on it (``dependencies=[JSON_BODY]``),
so a new route states its own needs instead of being listed in a middleware."""

from __future__ import annotations

from fastapi import Depends, Request

from service.api.errors import ApiError, ErrorCode


async def require_json(request: Request) -> None:
    """415 unless the body is declared ``application/json`` (parameters such as charset allowed)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise ApiError(ErrorCode.unsupported_media_type,
                       f"content type must be application/json, not {ctype or 'none'}")


JSON_BODY = Depends(require_json)
