"""Opening a stream: check load and limits, spend the token, take a lease, subscribe, stream."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator

import anyio

from api.auth.rate_limits import retry_after_jitter
from api.errors import ApiError
from api.hub.leases import Lease
from api.services import ApiServices
from api.stream.connection import Connection
from progress.cursor import Cursor

log = logging.getLogger("api.streams")


async def open_stream(
    services: ApiServices,
    sse_token: str | None,
    last_event_id: str | None,
    client_ip: str,
    progress_interval: float = 0.0,
) -> AsyncIterator[bytes]:
    """Check everything that can be refused, then return the stream's frames.

    Raises ApiError (400, 401, 403, 409, 429) or StoreUnavailable (503) before anything is
    streamed.
    """
    _refuse_when_loaded(services, client_ip)
    services.redis_health.check()
    guard = services.guard
    principal = await guard.authenticated(
        "stream", client_ip, lambda: services.tokens.spend_sse_token(sse_token)
    )
    # Parsed after the token is spent: an open refused for its cursor (400) still used up its
    # single-use token, at no cost to a valid open.
    cursor = Cursor.parse(last_event_id) if last_event_id else None
    if not services.settings.enabled or services.hub.mode_of(principal.user_id) == "polling":
        _refused(services, "realtime_polling", client_ip, principal.user_id)
        raise ApiError(
            409,
            "realtime_polling",
            "streams are off for this user: poll GET /api/v1/events/history "
            "(see GET /api/v1/realtime/config)",
        )
    await guard.admit("stream", client_ip, principal.user_id)
    connection = Connection(
        secrets.token_hex(8),
        principal,
        cursor,
        services.replay_store,
        services.authorizer,
        services.options,
        progress_interval,
        observer=services.metrics,
        archive=services.archive,
    )
    lease = Lease(principal.user_id, connection.id)
    acquired, stored_preferences = await services.registry.acquire_reading(
        lease, principal.session_id, services.preferences.key(principal.user_id)
    )
    if not acquired:
        _refused(services, "too_many_connections", client_ip, principal.user_id)
        raise ApiError(
            429,
            "too_many_connections",
            f"at most {services.settings.max_connections_per_user} streams per user; "
            "share one stream between tabs",
            retry_after_jitter(),
        )
    try:
        connection.preferences = services.preferences.parse(stored_preferences)
        await services.hub.attach(connection)
        await connection.prepare()
    except Exception as exc:
        await services.hub.detach(connection)
        await services.registry.release(lease)
        log.warning(
            "stream failed to open: %s",
            exc,
            extra=_ids(services, connection) | {"reason": type(exc).__name__},
        )
        raise
    services.metrics.opened()
    log.info("stream opened", extra=_ids(services, connection) | {"client_ip": client_ip})
    return _run(services, connection, lease)


def _refuse_when_loaded(services: ApiServices, client_ip: str) -> None:
    settings = services.settings
    if len(services.hub.connections) >= settings.max_connections_per_instance:
        _refused(services, "instance_full", client_ip)
        raise ApiError(
            429,
            "instance_full",
            f"this instance holds its maximum of {settings.max_connections_per_instance} "
            "streams; retry later (possibly on another instance)",
            retry_after_jitter(),
        )
    if services.backpressure.saturated:
        _refused(services, "overloaded", client_ip)
        raise ApiError(
            429, "overloaded", "this instance is saturated; retry later", retry_after_jitter()
        )


def _refused(
    services: ApiServices, reason: str, client_ip: str, user_id: str | None = None
) -> None:
    services.metrics.refused(reason)
    log.warning(
        "stream refused: %s",
        reason,
        extra={
            "reason": reason,
            "client_ip": client_ip,
            "user_id": user_id,
            "instance_id": services.settings.instance_id,
        },
    )


def _ids(services: ApiServices, connection: Connection) -> dict[str, object]:
    return {
        "connection_id": connection.id,
        "user_id": connection.principal.user_id,
        "instance_id": services.settings.instance_id,
    }


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
                log.warning(
                    "could not release lease (%s: %s)",
                    type(exc).__name__,
                    exc,
                    extra=_ids(services, connection) | {"reason": "lease_release_failed"},
                )
        services.metrics.closed(connection.close_reason)
        log.info(
            "stream closed",
            extra=_ids(services, connection)
            | {"reason": connection.close_reason, "delivered": connection.delivered},
        )
