"""API keys: ``Authorization: Bearer <key>`` on every path but the public ones (probes, docs)."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.errors import ErrorCode, send_error


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, keys: Iterable[str], public_paths: Iterable[str] = ()):
        self.app = app
        self.keys = [k.encode() for k in keys]
        self.public_paths = frozenset(public_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.public_paths or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        await send_error(send, ErrorCode.unauthorized, "missing or invalid API key: send "
                         "'Authorization: Bearer <key>'", headers={"WWW-Authenticate": "Bearer"})

    def _authorized(self, scope: Scope) -> bool:
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"bearer" or not token:
            return False
        # Compare against every key in constant time, so timing reveals neither key nor which matched.
        ok = False
        for key in self.keys:
            ok |= hmac.compare_digest(token.strip(), key)
        return ok
