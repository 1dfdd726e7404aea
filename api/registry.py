"""The connection registry in Redis: one expiring lease per open stream, a per-user limit.

    rt:{u:<user>}:conns            sorted set: connection id -> lease expiry (ms, Redis time)
    rt:{u:<user>}:conn:<conn id>   hash: user_id, session_id, instance_id, connected_at

Leases are refreshed while the stream lives and removed when it ends; if an instance dies its
leases lapse by themselves, so its users can reconnect elsewhere within one lease.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from progress.errors import StoreUnavailable
from progress.keys import user_stream

# KEYS: conns, conn[, a key of the same user to read back]
# ARGV: conn id, limit, lease ms, session id, instance id, connected at
# Returns 0 (refused), or 1; with a third key, {1, its value or nil}.
ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
local lease = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease)
redis.call('HSET', KEYS[2], 'connection_id', ARGV[1], 'session_id', ARGV[4],
           'instance_id', ARGV[5], 'connected_at', ARGV[6])
redis.call('PEXPIRE', KEYS[2], lease)
if KEYS[3] then return {1, redis.call('GET', KEYS[3])} end
return 1
"""

# KEYS: conns, conn   ARGV: conn id, lease ms
REFRESH_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease)
redis.call('PEXPIRE', KEYS[2], lease)
return 1
"""


# KEYS: conns, conn   ARGV: conn id
RELEASE_LUA = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return 1
"""


@dataclass(frozen=True, slots=True)
class Lease:
    """One open stream's entry in the registry."""

    user_id: str
    connection_id: str


class ConnectionRegistry:
    """Acquire, refresh and release leases; enforces the per-user connection limit."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        instance_id: str,
        limit: int,
        lease_seconds: float,
        prefix: str = "rt",
    ) -> None:
        self._client = client
        self._instance_id = instance_id
        self._limit = limit
        self._lease_ms = int(lease_seconds * 1000)
        self._prefix = prefix
        self._acquire = client.register_script(ACQUIRE_LUA)
        self._refresh = client.register_script(REFRESH_LUA)
        self._release = client.register_script(RELEASE_LUA)

    def _keys(self, lease: Lease) -> list[str]:
        tag = f"{self._prefix}:{{{user_stream(lease.user_id)}}}"
        return [f"{tag}:conns", f"{tag}:conn:{lease.connection_id}"]

    async def acquire(self, lease: Lease, session_id: str | None) -> bool:
        """Take a lease; False when the user already holds ``limit`` live ones."""
        return bool(await self._take(self._keys(lease), session_id, lease))

    async def acquire_reading(
        self, lease: Lease, session_id: str | None, key: str
    ) -> tuple[bool, bytes | None]:
        """``acquire``, and the value of ``key`` (a key of the lease's user) when it was taken:
        a stream open reads the user's preferences in the same round trip."""
        taken = await self._take([*self._keys(lease), key], session_id, lease)
        if not taken:
            return False, None
        return True, taken[1]

    async def _take(self, keys: list[str], session_id: str | None, lease: Lease) -> Any:
        now = datetime.now(UTC).isoformat()
        args = [
            lease.connection_id,
            self._limit,
            self._lease_ms,
            session_id or "",
            self._instance_id,
            now,
        ]
        try:
            return await self._acquire(keys, args)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise StoreUnavailable(f"Redis unavailable: {exc}") from exc

    async def refresh(self, leases: Iterable[Lease]) -> None:
        """Extend every lease given, in one round trip."""
        pipe = self._client.pipeline(transaction=False)
        count = 0
        for lease in leases:
            await self._refresh(
                self._keys(lease), [lease.connection_id, self._lease_ms], client=pipe
            )
            count += 1
        if count:
            await pipe.execute()

    async def release(self, lease: Lease) -> None:
        """Give a lease back at once."""
        # One script, not a pipeline: single commands share the client's batched connections
        # (thousands of streams closing together must not queue for a pooled connection each).
        await self._release(self._keys(lease), [lease.connection_id])

    async def count(self, user_id: str) -> int:
        """Live leases of ``user_id`` across all instances."""
        conns, _ = self._keys(Lease(user_id, "-"))
        return int(await self._client.zcount(conns, "-inf", "+inf"))
