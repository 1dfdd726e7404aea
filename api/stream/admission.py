"""Admitting a stream open: spend its sse_token, check the abuse limits, take a lease.

Every open is answered the same way, checked in this order:

1. 401 when the token is missing, malformed or expired (before any Redis call) or unknown or
   spent; each 401 is a strike against the address (403 ``ip_banned`` once it is banned);
2. 400 when the resume cursor is malformed (the token is spent);
3. 409 ``realtime_polling`` when streams are off for the user;
4. 403 ``ip_banned``; 429 ``rate_limited`` when the address's or the user's bucket is empty (a
   strike against the address);
5. 429 ``too_many_connections`` when the user holds their maximum of leases.

Redis down: 503 (the token cannot be spent). :class:`StepwiseAdmission` sends ``GETDEL``, then
the two bucket scripts together, then the lease script: three round trips, each touching one
hash slot. ``Admission`` is the one interface ``open_stream`` calls.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn, Protocol

from api.auth.rate_limits import AbuseGuard, retry_after_jitter
from api.auth.tokens import Principal, TokenService
from api.errors import ApiError
from api.hub.leases import ConnectionRegistry, Lease
from api.ops.metrics import ApiMetrics
from api.preferences import PreferenceStore
from progress.cursor import Cursor

log = logging.getLogger("api.streams")

#: The abuse limits' action of a stream open.
ACTION = "stream"

#: Records a refused open: reason, client address, user id (None before the token is read).
Refused = Callable[[str, str, str | None], None]


def log_refusal(
    metrics: ApiMetrics, instance_id: str, reason: str, client_ip: str, user_id: str | None = None
) -> None:
    """Count a refused open by ``reason`` and log it (``stream refused: <reason>``)."""
    metrics.refused(reason)
    log.warning(
        "stream refused: %s",
        reason,
        extra={
            "reason": reason,
            "client_ip": client_ip,
            "user_id": user_id,
            "instance_id": instance_id,
        },
    )


@dataclass(frozen=True, slots=True)
class Admitted:
    """An open that passed every check: who, where it resumes, its lease, and the user's
    stored preferences as Redis holds them (None when the user has none)."""

    principal: Principal
    cursor: Cursor | None
    lease: Lease
    preferences: bytes | None


@dataclass(frozen=True, slots=True)
class OpenChecks:
    """What admitting an open calls on, whichever the path."""

    tokens: TokenService
    guard: AbuseGuard
    registry: ConnectionRegistry
    preferences: PreferenceStore
    #: True when streams are off for the user (realtime disabled, or the user polls).
    streams_off: Callable[[str], bool]
    refused: Refused
    max_connections_per_user: int


class Admission(Protocol):
    """Admits stream opens (see the module's docstring for the answers)."""

    async def admit(
        self, sse_token: str | None, last_event_id: str | None, client_ip: str
    ) -> Admitted:
        """The admitted open; raises ApiError (400, 401, 403, 409, 429), InvalidCursor (400)
        or StoreUnavailable (503)."""
        ...


class StepwiseAdmission:
    """Spend, limits, lease: one round trip each."""

    def __init__(self, checks: OpenChecks) -> None:
        self._checks = checks

    async def admit(
        self, sse_token: str | None, last_event_id: str | None, client_ip: str
    ) -> Admitted:
        checks = self._checks
        principal = await checks.guard.authenticated(
            ACTION, client_ip, lambda: checks.tokens.spend_sse_token(sse_token)
        )
        # Parsed after the token is spent: an open refused for its cursor (400) still used up
        # its single-use token, at no cost to a valid open.
        cursor = Cursor.parse(last_event_id) if last_event_id else None
        user_id = principal.user_id
        if checks.streams_off(user_id):
            _refuse_polling(checks, client_ip, user_id)
        await checks.guard.admit(ACTION, client_ip, user_id)
        lease = Lease(user_id, _connection_id())
        acquired, preferences = await checks.registry.acquire_reading(
            lease, principal.session_id, checks.preferences.key(user_id)
        )
        if not acquired:
            _refuse_full(checks, client_ip, user_id)
        return Admitted(principal, cursor, lease, preferences)


def _connection_id() -> str:
    return secrets.token_hex(8)


def _refuse_polling(checks: OpenChecks, client_ip: str, user_id: str) -> NoReturn:
    checks.refused("realtime_polling", client_ip, user_id)
    raise ApiError(
        409,
        "realtime_polling",
        "streams are off for this user: poll GET /api/v1/events/history "
        "(see GET /api/v1/realtime/config)",
    )


def _refuse_full(checks: OpenChecks, client_ip: str, user_id: str) -> NoReturn:
    checks.refused("too_many_connections", client_ip, user_id)
    raise ApiError(
        429,
        "too_many_connections",
        f"at most {checks.max_connections_per_user} streams per user; "
        "share one stream between tabs",
        retry_after_jitter(),
    )
