"""Abuse limits shared by every instance: token buckets and temporary IP bans in Redis.

    rt:{ip:<ip>}:rl:<action>    hash: tokens, ts (ms)       a bucket per IP and action
    rt:{u:<user>}:rl:<action>   hash: tokens, ts (ms)       a bucket per user and action
    rt:{ip:<ip>}:strikes        string: counter             auth failures and refusals
    rt:{ip:<ip>}:ban            string: "1"                 the IP is banned while it exists

Actions are ``sse_token`` (token issuance), ``stream`` (stream opens) and ``write`` (every
POST/PUT/PATCH/DELETE under /api/v1 of an authenticated user: a per-user bucket only, see
``admit_user``). An IP that collects
``ban_after`` strikes (failed authentications, requests refused for rate) within
``strike_window`` seconds is banned for ``ban_seconds``. Each check is one round trip (its two
scripts go out together);
the IP's keys share its hash tag and the user's bucket its user tag (Redis Cluster safe).
When Redis does not answer, checks let the request through (and count it): the limits protect
the tier, they must not take it down with Redis.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.errors import ApiError
from progress.keys import KeyLayout
from progress.redis_pipeline import lua_source
from progress.redis_store import AsyncClient

log = logging.getLogger("api.ratelimit")

T = TypeVar("T")

# The scripts are package data (api/auth/lua/*.lua), each with its KEYS, ARGV and reply in
# its header. The bucket's functions are shared with the stream open's script
# (api/stream/admission.py), which runs them in the same call as the token and the lease.
BUCKET_FUNCTIONS = lua_source("api.auth", "bucket_lib.lua")
BUCKET_LUA = BUCKET_FUNCTIONS + lua_source("api.auth", "rate_bucket.lua")

STRIKE_LUA = lua_source("api.auth", "ip_strike.lua")


#: The action every write request of a user is charged to.
WRITE = "write"


@dataclass(frozen=True, slots=True)
class Rate:
    """A token bucket: ``per_second`` refill, ``burst`` capacity."""

    per_second: float
    burst: int


@dataclass(frozen=True, slots=True)
class AbuseLimits:
    """Every limit; see ``SSE_RATE_*`` / ``SSE_BAN_*`` in api/settings.py."""

    per_ip: dict[str, Rate]
    per_user: dict[str, Rate]
    ban_after: int
    strike_window_seconds: float
    ban_seconds: float


Refusal = Callable[[str, str, str], None]  # action, reason, client ip


class AbuseGuard:
    """Checks an action against the IP's ban, the IP's bucket and the user's bucket."""

    def __init__(
        self,
        client: AsyncClient,
        limits: AbuseLimits,
        prefix: str = "rt",
        on_refused: Refusal | None = None,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self._client = client
        #: Every limit (read by the stream open's script, api/stream/admission.py).
        self.limits = limits
        self._layout = KeyLayout(prefix)
        self._bucket = client.register_script(BUCKET_LUA)
        self._strike = client.register_script(STRIKE_LUA)
        self._on_refused = on_refused
        self._on_error = on_error

    async def admit(self, action: str, ip: str, user_id: str | None) -> None:
        """Let the request through, or raise ApiError 403 ``ip_banned`` / 429 ``rate_limited``."""
        ip_rate = self.limits.per_ip[action]
        # Two single commands, not a pipeline: the client batches commands of one loop turn
        # on shared connections, where a pipeline holds a pooled connection for its round
        # trips (and a SCRIPT EXISTS first), which queued bursts of opens behind three of them.
        user_rate = self.limits.per_user.get(action)
        user_check = None
        if user_id is not None and user_rate is not None:
            key = self._layout.user_bucket(user_id, action)
            user_check = asyncio.ensure_future(
                self._bucket([key], [user_rate.per_second, user_rate.burst])
            )
        try:
            try:
                results = [
                    await self._bucket(
                        [self._layout.ip_bucket(ip, action), self._layout.ip_ban(ip)],
                        [ip_rate.per_second, ip_rate.burst],
                    )
                ]
                if user_check is not None:
                    results.append(await user_check)
            finally:
                if user_check is not None:
                    _settle(user_check)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            self._failed_open(exc)
            return
        await self.judge(
            action, ip, int(results[0][2]), [int(r[1]) for r in results if not int(r[0])]
        )

    async def judge(self, action: str, ip: str, banned_ms: int, waits: list[int]) -> None:
        """Answer checks made: 403 ``ip_banned`` when ``banned_ms`` is not 0, else 429
        ``rate_limited`` (a strike against the IP) when a bucket refused (``waits``: the retry
        ms of each refusing bucket)."""
        if banned_ms:
            self._refuse(action, ip, "ip_banned", banned_ms)
        if waits:
            await self.strike(ip)
            self._refuse(action, ip, "rate_limited", max(waits))

    async def admit_user(self, action: str, ip: str, user_id: str) -> None:
        """Charge one request to ``user_id``'s ``action`` bucket; ApiError 429 ``rate_limited``
        (with Retry-After) when it is empty. No strike: the user, not the address, is over."""
        rate = self.limits.per_user[action]
        key = self._layout.user_bucket(user_id, action)
        try:
            allowed, wait, _ = (
                int(v) for v in await self._bucket([key], [rate.per_second, rate.burst])
            )
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            self._failed_open(exc)
            return
        if not allowed:
            self._refuse(action, ip, "rate_limited", wait)

    async def strike(self, ip: str) -> int:
        """Count one strike against ``ip``; ms of ban left (0 when not banned)."""
        limits = self.limits
        try:
            return int(
                await self._strike(
                    [self._layout.ip_strikes(ip), self._layout.ip_ban(ip)],
                    [
                        int(limits.strike_window_seconds * 1000),
                        limits.ban_after,
                        int(limits.ban_seconds * 1000),
                    ],
                )
            )
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            self._failed_open(exc)
            return 0

    async def authenticated(
        self, action: str, ip: str, authenticate: Callable[[], Awaitable[T]]
    ) -> T:
        """Run ``authenticate``; a 401 counts a strike (403 once the IP is banned)."""
        try:
            return await authenticate()
        except ApiError as exc:
            if exc.status != 401:
                raise
            banned = await self.strike(ip)
            if banned:
                self._refuse(action, ip, "ip_banned", banned)
            if self._on_refused is not None:
                self._on_refused(action, exc.code, ip)
            raise

    def _refuse(self, action: str, ip: str, reason: str, retry_ms: int) -> None:
        if self._on_refused is not None:
            self._on_refused(action, reason, ip)
        retry_after = str(max(1, math.ceil(retry_ms / 1000)))
        if reason == "ip_banned":
            raise ApiError(
                403,
                "ip_banned",
                "too many failed or refused requests from this address; banned for a while",
                {"Retry-After": retry_after},
            )
        raise ApiError(
            429, "rate_limited", f"too many {action} requests", {"Retry-After": retry_after}
        )

    def _failed_open(self, exc: Exception) -> None:
        log.warning("rate limits not checked, Redis did not answer: %s", exc)
        if self._on_error is not None:
            self._on_error()


def _settle(task: asyncio.Future[object]) -> None:
    """Cancel a check nobody awaits any more, or mark its failure as seen."""
    if not task.done():
        task.cancel()
    elif not task.cancelled():
        task.exception()


def retry_after_jitter(low: int = 5, high: int = 20) -> dict[str, str]:
    """A ``Retry-After`` header spread over ``low``..``high`` seconds (no thundering herd)."""
    return {"Retry-After": str(random.randint(low, high))}
