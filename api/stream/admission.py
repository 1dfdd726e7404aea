"""Admitting a stream open: spend its sse_token, check the abuse limits, take a lease.

Every open is answered the same way, whichever path it takes, checked in this order:

1. 401 when the token is missing, malformed or expired (before any Redis call) or unknown or
   spent; each 401 is a strike against the address (403 ``ip_banned`` once it is banned);
2. 400 when the resume cursor is malformed (the token is spent);
3. 409 ``realtime_polling`` when streams are off for the user;
4. 403 ``ip_banned``; 429 ``rate_limited`` when the address's or the user's bucket is empty (a
   strike against the address);
5. 429 ``too_many_connections`` when the user holds their maximum of leases.

Redis down: 503 (the token cannot be spent). Two paths, chosen once when the services are
built (:func:`admission_for`):

- :class:`ScriptedAdmission`, on a single Redis: one call of ``stream_open.lua`` spends the
  token, checks the ban and both buckets, takes the lease and reads the user's preferences.
  The user is known only from the token, so the script puts the user's keys together itself;
  a Redis Cluster cannot run that (keys of three hash tags, not all declared).
- :class:`StepwiseAdmission`, on a cluster: ``GETDEL``, then the two bucket scripts together,
  then the lease script; three round trips.

The scripted path answers exactly as the stepwise one because it runs only while no user's
streams are off: the script charges the buckets and takes the lease before Python knows the
user, so a 409 would have used up rate (on a polling rollout, the retries of a whole address).
While realtime is disabled or a polling rule covers anyone, opens take the stepwise path.
``SSE_OPEN_SCRIPT=false`` forces the stepwise path for good: for a Redis-compatible server or
proxy that refuses keys a script does not declare.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

import redis.asyncio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT

from api.auth.rate_limits import BUCKET_FUNCTIONS, AbuseGuard, retry_after_jitter
from api.auth.tokens import Principal, TokenService
from api.errors import ApiError
from api.hub.leases import LEASE_FUNCTIONS, ConnectionRegistry, Lease
from api.ops.metrics import ApiMetrics
from api.preferences import PreferenceStore
from progress.cursor import Cursor
from progress.errors import InvalidCursor, StoreUnavailable
from progress.keys import KeyLayout
from progress.redis_pipeline import lua_source
from progress.redis_store import AsyncClient

log = logging.getLogger("api.streams")

#: The abuse limits' action of a stream open.
ACTION = "stream"

#: Token, limits and lease in one call: the bucket's and the lease's functions, then the
#: script that calls them (api/stream/lua/stream_open.lua, header: KEYS, ARGV, reply).
OPEN_LUA = BUCKET_FUNCTIONS + LEASE_FUNCTIONS + lua_source("api.stream", "stream_open.lua")

#: Stands for the user id in a key the layout builds; never part of a prefix or a user id.
_USER = "\0"

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
    #: True when streams may be off for some user (realtime disabled, or a polling rule).
    any_streams_off: Callable[[], bool]
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


def admission_for(
    client: AsyncClient, layout: KeyLayout, checks: OpenChecks, scripted: bool = True
) -> Admission:
    """One script per open on a single Redis (unless not ``scripted``); the stepwise checks
    on a cluster."""
    if not scripted or isinstance(client, redis.asyncio.RedisCluster):
        return StepwiseAdmission(checks)
    return ScriptedAdmission(checks, client, layout)


class StepwiseAdmission:
    """Spend, limits, lease: one round trip each (keys of three hash tags: Redis Cluster)."""

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


class ScriptedAdmission:
    """Spend, limits and lease in one call of ``stream_open.lua`` (a single Redis only); the
    stepwise path while any user's streams are off."""

    def __init__(self, checks: OpenChecks, client: AsyncClient, layout: KeyLayout) -> None:
        self._checks = checks
        self._stepwise = StepwiseAdmission(checks)
        self._layout = layout
        self._script = client.register_script(OPEN_LUA)
        ip_rate = checks.guard.limits.per_ip[ACTION]
        user_rate = checks.guard.limits.per_user.get(ACTION)
        user_args: list[EncodableT] = ["", ""]
        if user_rate is not None:
            user_args = [user_rate.per_second, user_rate.burst]
        #: ARGV 1-8: the rates, then the user's bucket and conns keys around the user id.
        self._head: list[EncodableT] = [
            ip_rate.per_second,
            ip_rate.burst,
            *user_args,
            *_around_user(layout.user_bucket(_USER, ACTION)),
            *_around_user(layout.leases(_USER)),
        ]
        self._preferences_key = _around_user(checks.preferences.key(_USER))

    async def admit(
        self, sse_token: str | None, last_event_id: str | None, client_ip: str
    ) -> Admitted:
        checks = self._checks
        if checks.any_streams_off():
            return await self._stepwise.admit(sse_token, last_event_id, client_ip)
        try:
            cursor = Cursor.parse(last_event_id) if last_event_id else None
        except InvalidCursor:
            # Rare: the stepwise path spends the token (a 401 first if it is not valid), then
            # refuses the cursor before any bucket or lease.
            return await self._stepwise.admit(sse_token, last_event_id, client_ip)
        return await checks.guard.authenticated(
            ACTION, client_ip, lambda: self._checked(sse_token, client_ip, cursor)
        )

    async def _checked(
        self, sse_token: str | None, client_ip: str, cursor: Cursor | None
    ) -> Admitted:
        checks = self._checks
        layout = self._layout
        connection_id = _connection_id()
        keys = [
            checks.tokens.sse_token_key(sse_token),
            layout.ip_bucket(client_ip, ACTION),
            layout.ip_ban(client_ip),
        ]
        args = [
            *self._head,
            *_around_user(layout.connection(_USER, connection_id)),
            *self._preferences_key,
            *checks.registry.acquire_args(connection_id, None),
        ]
        try:
            reply: list[Any] = await self._script(keys, args)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise StoreUnavailable(f"Redis unavailable: {exc}") from exc
        principal = checks.tokens.holder_principal(reply[0] if reply else None)
        _, banned, ip_allowed, ip_wait, user_allowed, user_wait, leased, *preferences = reply
        lease = Lease(principal.user_id, connection_id)
        if checks.streams_off(principal.user_id):
            # A polling rule arrived while the script ran: rare, and the lease goes back.
            if int(leased):
                await _give_back(checks.registry, lease)
            _refuse_polling(checks, client_ip, principal.user_id)
        buckets = ((ip_allowed, ip_wait), (user_allowed, user_wait))
        waits = [int(wait) for allowed, wait in buckets if not int(allowed)]
        await checks.guard.judge(ACTION, client_ip, int(banned), waits)
        if not int(leased):
            _refuse_full(checks, client_ip, principal.user_id)
        return Admitted(principal, cursor, lease, preferences[0] if preferences else None)


def _connection_id() -> str:
    return secrets.token_hex(8)


def _around_user(key: str) -> tuple[str, str]:
    """The text before and after the user id in ``key`` (built for the user ``_USER``)."""
    if key.count(_USER) != 1:
        # The script would build keys that refresh and release never touch: a limit bypassed.
        raise ValueError(f"the key layout must hold the user id once, as is: {key!r}")
    before, _, after = key.partition(_USER)
    return before, after


async def _give_back(registry: ConnectionRegistry, lease: Lease) -> None:
    # Redis failing now only lets the lease lapse by itself; the open is refused either way.
    with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
        await registry.release(lease)


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
