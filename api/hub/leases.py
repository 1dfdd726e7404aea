"""The connection registry in Redis: one expiring lease per open stream, a per-user limit.

    rt:{u:<user>}:conns            sorted set: <conn id>@<run> -> lease expiry (ms, Redis time)
    rt:{u:<user>}:conn:<conn id>   hash: connection_id, session_id, instance_id, connected_at
    rt:instances                   sorted set: <run> -> alive until (ms, Redis time)

Leases are refreshed while the stream lives and removed when it ends. A lease names the run
(this process: its instance id and a random suffix) that holds it. Every run refreshes its
entry in ``rt:instances`` every ``heartbeat`` seconds, alive for ``ttl``; the same call returns
the runs whose time has passed, and an open passes that list to the acquire script, which drops
their leases before it counts. So a crashed instance's streams stop counting within about
``ttl + heartbeat`` seconds, not a whole lease. The script touches only the user's keys (one
hash slot on Redis Cluster); the list of dead runs comes from this process's memory, so an open
stays one round trip. A run nobody has heard of yet counts (new instances are never taken for
dead); a run is forgotten a lease after its death, when its leases have lapsed anyway.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT

from progress.errors import StoreUnavailable
from progress.keys import KeyLayout
from progress.redis_cluster import Command, run_cluster_commands_async
from progress.redis_pipeline import lua_source
from progress.redis_store import AsyncClient

# The scripts are package data (api/hub/lua/*.lua), each with its KEYS, ARGV and reply in
# its header. Taking a lease is a function shared with the stream open's script
# (api/stream/admission.py), which runs it in the same call as the token and the limits.
LEASE_FUNCTIONS = lua_source("api.hub", "lease_lib.lua")
ACQUIRE_LUA = LEASE_FUNCTIONS + lua_source("api.hub", "lease_acquire.lua")

REFRESH_LUA = lua_source("api.hub", "lease_refresh.lua")


RELEASE_LUA = lua_source("api.hub", "lease_release.lua")

HEARTBEAT_LUA = lua_source("api.hub", "instance_heartbeat.lua")


@dataclass(frozen=True, slots=True)
class Lease:
    """One open stream's entry in the registry."""

    user_id: str
    connection_id: str


class ConnectionRegistry:
    """Acquire, refresh and release leases; enforces the per-user connection limit."""

    def __init__(
        self,
        client: AsyncClient,
        instance_id: str,
        limit: int,
        lease_seconds: float,
        prefix: str = "rt",
        alive_seconds: float = 5.0,
    ) -> None:
        self._client = client
        self._instance_id = instance_id
        #: This process: a restarted instance with the same id is another run, so the leases
        #: its previous run left behind stop counting as soon as that run is seen dead.
        self.run = f"{instance_id}.{secrets.token_hex(4)}"
        self._limit = limit
        self._lease_ms = int(lease_seconds * 1000)
        self._alive_ms = int(alive_seconds * 1000)
        self._layout = KeyLayout(prefix)
        #: Runs seen dead by the last heartbeat: their leases no longer count.
        self.dead: tuple[str, ...] = ()
        self._acquire = client.register_script(ACQUIRE_LUA)
        self._refresh = client.register_script(REFRESH_LUA)
        self._release = client.register_script(RELEASE_LUA)
        self._heartbeat = client.register_script(HEARTBEAT_LUA)

    def _keys(self, lease: Lease) -> list[str]:
        layout = self._layout
        return [layout.leases(lease.user_id), layout.connection(lease.user_id, lease.connection_id)]

    def _member(self, lease: Lease) -> str:
        return f"{lease.connection_id}@{self.run}"

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

    def acquire_args(self, connection_id: str, session_id: str | None) -> list[EncodableT]:
        """``lease_acquire.lua``'s ARGV for a lease of ``connection_id`` (the stream open's script
        takes them too): connection id, limit, lease ms, session id, instance id, connected at,
        run, dead runs."""
        now = datetime.now(UTC).isoformat()
        return [
            connection_id,
            self._limit,
            self._lease_ms,
            session_id or "",
            self._instance_id,
            now,
            self.run,
            *self.dead,
        ]

    async def _take(self, keys: list[str], session_id: str | None, lease: Lease) -> Any:
        try:
            return await self._acquire(keys, self.acquire_args(lease.connection_id, session_id))
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise StoreUnavailable(f"Redis unavailable: {exc}") from exc

    async def refresh(self, leases: Iterable[Lease]) -> None:
        """Extend every lease given, in one round trip (on a cluster, one per node)."""
        client = self._client
        if isinstance(client, redis.asyncio.RedisCluster):
            sha = str(self._refresh.sha)
            commands: list[Command] = [
                ("EVALSHA", sha, 2, *self._keys(lease), self._member(lease), self._lease_ms)
                for lease in leases
            ]
            await run_cluster_commands_async(client, commands, (REFRESH_LUA,))
            return
        pipe = client.pipeline(transaction=False)
        count = 0
        for lease in leases:
            args: list[EncodableT] = [self._member(lease), self._lease_ms]
            await self._refresh(self._keys(lease), args, client=pipe)
            count += 1
        if count:
            await pipe.execute()

    async def release(self, lease: Lease) -> None:
        """Give a lease back at once."""
        # One script, not a pipeline: single commands share the client's batched connections
        # (thousands of streams closing together must not queue for a pooled connection each).
        await self._release(self._keys(lease), [self._member(lease)])

    async def heartbeat(self, alive: bool = True) -> tuple[str, ...]:
        """Say this run is alive for ``alive_seconds`` more (with ``alive=False``: that it has
        ended) and learn which runs are dead; one round trip."""
        dead = await self._heartbeat(
            [self._layout.instances()], [self.run, self._alive_ms if alive else 0, self._lease_ms]
        )
        runs = tuple(run.decode() if isinstance(run, bytes) else str(run) for run in dead)
        self.dead = tuple(run for run in runs if run != self.run)
        return self.dead

    async def count(self, user_id: str) -> int:
        """Leases of ``user_id`` across all instances (dead runs' included until dropped)."""
        return int(await self._client.zcount(self._layout.leases(user_id), "-inf", "+inf"))
