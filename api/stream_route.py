"""The event stream's route: FastAPI declares and documents it, a lean handler serves it.

Opening a stream is the API's hottest request (thousands at once after a deploy). FastAPI's
generic handling of one request (a ``Request``, two ``AsyncExitStack``s, dependency solving,
parameter validation through pydantic, and a wrapper coroutine around every ``send`` of the
stream's life) cost about as much CPU as opening the stream itself. ``StreamRoute`` is the
route's class: the OpenAPI schema still comes from the declared endpoint, the app's middleware
(error translation, response metrics) still wraps it, and its handler reads the few inputs
itself for an ordinary request: a GET whose ``progress_interval_ms`` is absent or plain digits.
Any other request (HEAD, an out-of-range or non-numeric interval) goes through FastAPI's own
handler, so validation errors keep their exact 422 body.

The inputs are read as FastAPI reads them: the last value of a repeated query parameter, the
first ``Last-Event-ID`` header, an empty header falling back to the ``last_event_id`` query.
Errors (ApiError, InvalidCursor, StoreUnavailable) propagate to the app's exception handlers
(``api.errors``), exactly as they do from the endpoint.
"""

from __future__ import annotations

from fastapi.routing import APIRoute
from starlette.datastructures import Headers, QueryParams
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from api.clientip import client_ip
from api.services import ApiServices
from api.sse_response import SseStream
from api.streams import open_stream

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
#: The largest ``progress_interval_ms`` (the endpoint declares it for the schema and FastAPI).
MAX_PROGRESS_INTERVAL_MS = 60_000


def plain_interval(value: str | None) -> int | None:
    """The interval in ms when ``value`` is absent (0) or plain digits in range, else None."""
    if value is None:
        return 0
    if not (0 < len(value) <= 6 and value.isascii() and value.isdigit()):
        return None
    interval = int(value)
    return interval if interval <= MAX_PROGRESS_INTERVAL_MS else None


class StreamRoute(APIRoute):
    """An ``APIRoute`` whose ordinary GETs skip FastAPI's per-request machinery."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not await self.serve(scope, receive, send):
            await super().handle(scope, receive, send)

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Serve an ordinary open (a GET whose interval is absent or plain digits in range);
        return False, having done nothing, for any other request."""
        query = QueryParams(scope["query_string"])
        interval = plain_interval(query.get("progress_interval_ms"))
        if scope["method"] != "GET" or interval is None:
            return False
        services: ApiServices = scope["app"].state.services
        connection = HTTPConnection(scope)
        last_event_id = Headers(scope=scope).get("last-event-id") or query.get("last_event_id")
        frames = await open_stream(
            services,
            query.get("sse_token"),
            last_event_id,
            client_ip(connection, services.trusted_proxies),
            interval / 1000,
        )
        response = SseStream(frames, headers=STREAM_HEADERS, streams=services.open_streams)
        await response(scope, receive, send)
        return True


class StreamShortcut:
    """ASGI: ordinary opens of the stream go straight to its route's lean handler, ahead of
    route matching (every route's pattern tried in turn), the routers' scope copies and
    FastAPI's per-request exit stack: about 3 KiB held per open stream and part of the CPU of
    each open. Sits inside the app's exception handling, so errors keep their JSON bodies;
    every other request passes on unchanged."""

    def __init__(self, app: ASGIApp, route: StreamRoute) -> None:
        self.app = app
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == self.route.path:
            if await self.route.serve(scope, receive, send):
                return
        await self.app(scope, receive, send)
