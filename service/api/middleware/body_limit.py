"""Body size: 413 past ``max_bytes``, whether the body declares its length or streams in chunks."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import ErrorCode, send_error


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > limit
            except ValueError:
                await send_error(send, ErrorCode.invalid_request, "invalid Content-Length header")
                return
            if too_big:
                await send_error(send, ErrorCode.payload_too_large,
                                 f"request body of {int(length)} bytes exceeds the limit of {limit} bytes")
                return
        if scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        # Read the body here, counting as it streams in (a chunked body has no Content-Length), then
        # replay it to the app; after it, ``receive`` passes through so disconnects still arrive.
        chunks, received = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                await send_error(send, ErrorCode.payload_too_large, f"request body exceeds the limit of {limit} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay_receive() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay_receive, send)
