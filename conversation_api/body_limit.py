"""Request bodies capped before anything reads them: a pure ASGI middleware that buffers nothing.

A declared Content-Length over the cap is refused at once, before routing, auth or
parsing, without reading a byte of the body. A body without one (chunked) is counted
as it arrives and refused as soon as it passes the cap, so a reader never holds more
than the cap. Either way the answer is a 413 in the API's error shape.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conversation_api.errors import error_body

CODE = "payload_too_large"


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a streamed body passes the cap.

    An HTTPException so that FastAPI's body reader passes it on as it is instead of
    turning it into a 400 "error parsing the body"; errors.py renders it.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the body is over the limit of {limit} bytes", headers={"Connection": "close"})


class BodySizeLimit:
    def __init__(self, app: ASGIApp, *, default: int, by_path: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.default = default
        self.by_path = dict(by_path or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.by_path.get(scope["path"], self.default)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, f"the body is {declared} bytes; the limit is {limit}")
            return

        received = 0
        started = False

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, capped_receive, tracking_send)
        except BodyTooLarge as error:
            # Normally the app's exception handlers answer; this catches a reader outside them.
            if started:
                raise
            await _refuse(send, str(error.detail))


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, detail: str) -> None:
    body = orjson.dumps(error_body(CODE, detail))
    # Connection: close, so the server drops the rest of the body instead of reading it to find the next request.
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
