"""Opening a stream: check load, admit (token, limits, lease), subscribe, stream."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import anyio

from api.auth.rate_limits import retry_after_jitter
from api.errors import ApiError
from api.hub.leases import Lease
from api.services import ApiServices
from api.stream.admission import log_refusal
from api.stream.connection import Connection

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
    streamed; the token, the limits and the lease are the admission's (api/stream/admission.py).
    """
    _refuse_when_loaded(services, client_ip)
    services.redis_health.check()
    admitted = await services.admission.admit(sse_token, last_event_id, client_ip)
    lease = admitted.lease
    connection = Connection(
        lease.connection_id,
        admitted.principal,
        admitted.cursor,
        services.replay_store,
        services.authorizer,
        services.options,
        progress_interval,
        observer=services.metrics,
        archive=services.archive,
    )
    try:
        connection.preferences = services.preferences.parse(admitted.preferences)
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


def _refused(services: ApiServices, reason: str, client_ip: str) -> None:
    log_refusal(services.metrics, services.settings.instance_id, reason, client_ip)


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
