"""The event stream, history and health endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse

from api.deps import ADMIN_ROLE, BearerToken, ClientIp, CurrentUser, Services
from api.errors import COMMON_ERRORS, ApiError
from api.ops.health import health as health_status
from api.ops.health import report
from api.stream.history import HistoryPage, read_history
from api.stream.open import open_stream
from api.stream.response import SseStream
from api.stream.shortcut import MAX_PROGRESS_INTERVAL_MS, STREAM_HEADERS, STREAM_PATH
from progress.cursor import Cursor

router = APIRouter(prefix="/api/v1/events", tags=["events"], responses=COMMON_ERRORS)


# Ordinary opens are served before routing (api/stream/shortcut.py StreamShortcut); this
# endpoint documents the route and serves the other requests (HEAD, invalid parameters).
@router.get(
    STREAM_PATH.removeprefix(router.prefix),
    response_class=SseStream,
    status_code=200,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "the event stream"},
        400: {"description": "invalid cursor"},
        401: {"description": "missing, malformed, expired, reused or wrongly signed token"},
        403: {"description": "this address is banned for a while (see Retry-After)"},
        409: {"description": "realtime mode is polling for this user"},
        429: {"description": "rate, per-user or per-instance limit, or overload (Retry-After)"},
        503: {"description": "Redis unavailable"},
    },
)
async def stream(
    services: Services,
    ip: ClientIp,
    sse_token: Annotated[str | None, Query(description="from POST /api/v1/auth/sse-token")] = None,
    last_event_id: Annotated[str | None, Query(description="cursor to resume after")] = None,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    progress_interval_ms: Annotated[
        int,
        Query(
            ge=0,
            le=MAX_PROGRESS_INTERVAL_MS,
            description="at most one progress update per task this often",
        ),
    ] = 0,
) -> SseStream:
    """Server-Sent Events for the caller: their events, their session's, and broadcasts."""
    frames = await open_stream(
        services,
        sse_token,
        last_event_id_header or last_event_id,
        ip,
        progress_interval_ms / 1000,
    )
    return SseStream(
        frames,
        headers=STREAM_HEADERS,
        streams=services.open_streams,
    )


@router.get("/history", response_model=HistoryPage)
async def history(
    principal: CurrentUser,
    services: Services,
    since_id: Annotated[
        str | None, Query(description="cursor from a previous page or event")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> HistoryPage:
    """The caller's events after ``since_id``, oldest first, with the cursor to continue from."""
    since = Cursor.parse(since_id) if since_id else None
    return await read_history(
        services.store, services.authorizer, principal, since, limit, services.archive
    )


@router.get(
    "/health",
    responses={
        503: {"description": "Redis does not answer"},
        403: {"description": "a Bearer JWT without the admin role was sent"},
    },
)
async def health(services: Services, bearer: BearerToken) -> JSONResponse:
    """Status of this instance (503 when Redis does not answer); with an admin's Bearer JWT,
    also the operations report under ``report``."""
    admin = None
    if bearer is not None:
        admin = await services.tokens.principal_from_jwt(bearer)
        if ADMIN_ROLE not in admin.roles:
            raise ApiError(403, "forbidden", "the operations report needs the admin role")
    body, status = await health_status(services)
    if admin is not None and status == 200:
        body["report"] = await report(services)
    return JSONResponse(body, status)
