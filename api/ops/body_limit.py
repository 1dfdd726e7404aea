"""The request body limit (``SSE_MAX_BODY_BYTES``), as plain ASGI middleware outside routing.

A declared ``Content-Length`` over the limit is answered 413 at once: the app (authentication,
body parsing) never runs and the body is never read. A body without a length (chunked) is
counted as the app reads it; the read that crosses the limit raises an ``HTTPException(413)``
(the one exception FastAPI lets through its body parsing unchanged), which ``api.errors`` turns
into the same JSON answer, so at most the limit (plus one chunk) is ever held.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import BODY_TOO_LARGE, error_body


def _message(limit: int) -> str:
    return f"the request body is larger than {limit} bytes"


class BodyLimit:
    """Refuse request bodies larger than ``max_bytes`` with 413 ``body_too_large``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is None and "transfer-encoding" not in headers:
            # No body (every stream open, every GET): nothing to count.
            await self.app(scope, receive, send)
            return
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            # The unread body stays on the socket: close the connection after answering.
            response = JSONResponse(
                error_body(BODY_TOO_LARGE, _message(self.max_bytes)), 413, {"Connection": "close"}
            )
            await response(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, _message(self.max_bytes), {"Connection": "close"})
            return message

        await self.app(scope, counted, send)
