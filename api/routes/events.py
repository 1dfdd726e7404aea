"""The event stream, history and health endpoints."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse

from api.deps import CurrentUser, Services
from api.errors import COMMON_ERRORS
from api.history import HistoryPage, read_history
from api.streams import open_stream
from progress.cursor import Cursor
from progress.errors import StoreUnavailable

router = APIRouter(prefix="/api/v1/events", tags=["events"], responses=COMMON_ERRORS)

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.get(
    "/stream",
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "the event stream"},
        400: {"description": "invalid cursor"},
        401: {"description": "missing, malformed, expired, reused or wrongly signed token"},
        409: {"description": "realtime mode is polling for this user"},
        429: {"description": "too many streams for this user (see Retry-After)"},
        503: {"description": "Redis unavailable"},
    },
)
async def stream(
    services: Services,
    sse_token: Annotated[str | None, Query(description="from POST /api/v1/auth/sse-token")] = None,
    last_event_id: Annotated[str | None, Query(description="cursor to resume after")] = None,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    progress_interval_ms: Annotated[
        int,
        Query(ge=0, le=60_000, description="at most one progress update per task this often"),
    ] = 0,
) -> EventSourceResponse:
    """Server-Sent Events for the caller: their events, their session's, and broadcasts."""
    frames = await open_stream(
        services, sse_token, last_event_id_header or last_event_id, progress_interval_ms / 1000
    )
    return EventSourceResponse(
        frames,
        ping=0,
        headers=STREAM_HEADERS,
        shutdown_event=services.shutdown_event,
        shutdown_grace_period=1.0,
        send_timeout=services.settings.send_timeout_seconds,
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


@router.get("/health")
async def health(services: Services) -> JSONResponse:
    """Status of this instance; 503 when Redis does not answer."""
    body: dict[str, object] = {
        "instance_id": services.settings.instance_id,
        "uptime_seconds": round(time.monotonic() - services.started_at, 1),
        "connections": len(services.hub.connections),
        "subscribed_users": len(services.hub.subscribed_users()),
        "pubsub_link": "up" if services.hub.link_up else "down",
    }
    try:
        latency = await services.store.ping()
    except StoreUnavailable as exc:
        body |= {"status": "unavailable", "redis": {"reachable": False, "error": str(exc)}}
        return JSONResponse(body, 503)
    body |= {
        "status": "ok" if services.hub.link_up else "degraded",
        "redis": {"reachable": True, "latency_ms": round(latency * 1000, 2)},
    }
    return JSONResponse(body)
