"""Opening a stream: spend the token, check the cursor, take a lease, subscribe, then stream."""

from __future__ import annotations

import logging
import random
import secrets
from collections.abc import AsyncIterator

import anyio

from api.connection import Connection
from api.errors import ApiError
from api.registry import Lease
from api.services import ApiServices
from progress.cursor import Cursor

log = logging.getLogger("api.streams")


async def open_stream(
    services: ApiServices,
    sse_token: str | None,
    last_event_id: str | None,
    progress_interval: float = 0.0,
) -> AsyncIterator[bytes]:
    """Check everything that can be refused, then return the stream's frames.

    Raises ApiError (401, 400, 409, 429) or StoreUnavailable (503) before anything is streamed.
    """
    cursor = Cursor.parse(last_event_id) if last_event_id else None
    principal = await services.tokens.spend_sse_token(sse_token)
    if not services.settings.enabled or services.hub.mode_of(principal.user_id) == "polling":
        raise ApiError(
            409,
            "realtime_polling",
            "streams are off for this user: poll GET /api/v1/events/history "
            "(see GET /api/v1/realtime/config)",
        )
    connection = Connection(
        secrets.token_hex(8),
        principal,
        cursor,
        services.store,
        services.authorizer,
        services.options,
        progress_interval,
        archive=services.archive,
    )
    lease = Lease(principal.user_id, connection.id)
    if not await services.registry.acquire(lease, principal.session_id):
        retry_after = random.randint(5, 20)
        raise ApiError(
            429,
            "too_many_connections",
            f"at most {services.settings.max_connections_per_user} streams per user; "
            "share one stream between tabs",
            {"Retry-After": str(retry_after)},
        )
    try:
        await services.hub.attach(connection)
        await connection.prepare()
    except Exception:
        await services.hub.detach(connection)
        await services.registry.release(lease)
        raise
    log.info(
        "stream opened",
        extra={
            "connection_id": connection.id,
            "user_id": principal.user_id,
            "instance_id": services.settings.instance_id,
        },
    )
    return _run(services, connection, lease)


async def _run(services: ApiServices, connection: Connection, lease: Lease) -> AsyncIterator[bytes]:
    try:
        async for chunk in connection.frames():
            yield chunk
    finally:
        # A vanished client ends this generator by cancellation: shield the cleanup, or the
        # first await re-raises CancelledError and the lease stays until it lapses.
        with anyio.move_on_after(5, shield=True):
            await services.hub.detach(connection)
            try:
                await services.registry.release(lease)
            except Exception as exc:  # the lease lapses by itself; never mask the stream's end
                log.warning("could not release lease %s: %s", lease.connection_id, exc)
        log.info(
            "stream closed",
            extra={
                "connection_id": connection.id,
                "user_id": connection.principal.user_id,
                "delivered": connection.delivered,
            },
        )
