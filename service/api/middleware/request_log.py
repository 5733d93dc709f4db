"""Request ids, the access log and the request metrics: one line and one observation per request.

The request id is the client's ``X-Request-ID`` when it is a sane token, else a fresh one; it is
echoed in the response. Metrics are labelled by the matched route's path template (``other`` when
no route matched), so a new route is counted under its own name without being listed anywhere.
Routes add fields to the log line through ``request.state`` (``items``, ``statuses``, ``judge``).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Sequence

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("libra.access")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
QUIET_PATHS = frozenset({"/health", "/ready", "/metrics"})  # probes and scrapes would drown the log


class RequestLogMiddleware:
    def __init__(self, app: ASGIApp, metrics, routes: Sequence[BaseRoute] = ()):
        """``routes``: the app's routes, to name the endpoint of a request refused before routing (401, 413)."""
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._record(scope, state, request_id, status, time.perf_counter() - started)

    def _record(self, scope: Scope, state: dict, request_id: str, status: int, seconds: float) -> None:
        endpoint = getattr(scope.get("route") or self._match(scope), "path", None) or "other"
        self.metrics.observe_request(endpoint, status, seconds)
        path = scope["path"]
        if path in QUIET_PATHS and status < 400:
            return
        fields = {"request_id": request_id, "method": scope["method"], "path": path, "status": status,
                  "duration_s": round(seconds, 4)}
        if "items" in state:
            fields["items"] = state["items"]
            fields["statuses"] = state.get("statuses", {})
        if "judge" in state:
            fields["judge"] = state["judge"]
        log.info("request", extra={"libra": fields})

    def _match(self, scope: Scope) -> BaseRoute | None:
        for route in self.routes:
            if route.matches(scope)[0] is not Match.NONE:
                return route
        return None
