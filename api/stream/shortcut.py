"""Ordinary stream opens served ahead of FastAPI's routing; the route documents the rest.

Opening a stream is the API's hottest request (thousands at once after a deploy). FastAPI's
generic handling of one request (route matching over every pattern, the routers' scope copies,
two ``AsyncExitStack``s, dependency solving, parameter validation through pydantic, and a
wrapper coroutine around every ``send`` of the stream's life) cost about as much CPU as opening
the stream itself, and about 3 KiB held per open stream. ``StreamShortcut`` is the innermost of
the app's own middleware (``api.main.create_app``): inside the response counter and the body
limit, outside FastAPI's exception handling. It serves an ordinary open itself: a GET of
``STREAM_PATH`` whose ``progress_interval_ms`` is absent or plain digits in range. Any other
request (HEAD, an out-of-range or non-numeric interval) goes on to the endpoint FastAPI declares
and documents (``api/routes/events.py``), so validation errors keep their exact 422 body.

The inputs are read as FastAPI reads them: the last value of a repeated query parameter, the
first ``Last-Event-ID`` header, an empty header falling back to the ``last_event_id`` query.
Errors of the open (ApiError, InvalidCursor, StoreUnavailable), all raised before the response
starts, are answered with the app's own handlers (``api.errors.error_response``), so their
bodies are exactly the endpoint's.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, TypeAdapter, ValidationError
from starlette.datastructures import Headers, QueryParams
from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth.client_ip import client_ip
from api.errors import error_response
from api.services import ApiServices
from api.stream.open import open_stream
from api.stream.response import SseStream

STREAM_PATH = "/api/v1/events/stream"
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


_INTERVAL = TypeAdapter(Annotated[int, Field(ge=0, le=MAX_PROGRESS_INTERVAL_MS)])


def valid_interval(value: str | None) -> bool:
    """True when the endpoint accepts ``value`` as ``progress_interval_ms`` (same rule)."""
    try:
        _INTERVAL.validate_python(value)
    except ValidationError:
        return False
    return True


async def open_response(scope: Scope) -> SseStream | None:
    """The response of an ordinary open (a GET whose interval is absent or plain digits in
    range); None, having sent nothing, for any other request. Raises the open's errors, as
    the endpoint does, before anything is sent."""
    query = QueryParams(scope["query_string"])
    interval = plain_interval(query.get("progress_interval_ms"))
    if scope["method"] != "GET":
        return None
    services: ApiServices = scope["app"].state.services
    if interval is None:
        if not valid_interval(query.get("progress_interval_ms")):
            # The endpoint answers 422; the token presented with it is used up all the same.
            await services.tokens.spend_refused(query.get("sse_token"))
        return None
    connection = HTTPConnection(scope)
    last_event_id = Headers(scope=scope).get("last-event-id") or query.get("last_event_id")
    frames = await open_stream(
        services,
        query.get("sse_token"),
        last_event_id,
        client_ip(connection, services.trusted_proxies),
        interval / 1000,
    )
    return SseStream(frames, headers=STREAM_HEADERS, streams=services.open_streams)


class StreamShortcut:
    """ASGI middleware: ordinary opens of ``STREAM_PATH`` are served here (their errors
    answered as the app answers them); every other request passes on unchanged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != STREAM_PATH:
            await self.app(scope, receive, send)
            return
        try:
            response = await open_response(scope)
        except Exception as exc:
            # Raised before the response started: the same answer the endpoint would get.
            error = await error_response(Request(scope, receive), exc)
            if error is None:
                raise
            await error(scope, receive, send)
            return
        if response is None:
            await self.app(scope, receive, send)
        else:
            await response(scope, receive, send)
