"""The Redis event store: one Lua call appends, trims, snapshots and publishes a batch.

``RedisEventStore`` (sync, for workers) and ``AsyncRedisEventStore`` (asyncio, for the API)
share the scripts and the pure helpers below; only the I/O differs. ``redis.exceptions`` never
leave this module: connection problems become :class:`progress.errors.StoreUnavailable`.
Key layout: ``progress.keys`` and docs/redis.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from progress.cursor import StreamState
from progress.errors import StoreUnavailable
from progress.events import TERMINAL_TASK_TYPES, EventEnvelope, WorkflowProgress, encode_event
from progress.keys import KeyLayout, user_of_stream, user_stream
from progress.redis_cluster import (
    connect_cluster,
    connect_cluster_async,
    is_cluster_url,
    run_cluster_commands_async,
    run_commands_on,
)
from progress.redis_pipeline import LuaScript, lua_source
from progress.snapshot import TaskSnapshot, snapshot_fields
from progress.store import StoredEvent, StoreSettings, new_epoch, streams_for
from progress.workflow import WORKFLOW_LUA, Tally, peek_call

# One call appends the events of up to ``StoreSettings.streams_per_call`` streams: each script
# call has a fixed cost in Redis, and one call per stream was a sixth of storing an event. The
# bound keeps any one call short, so other clients never wait long behind it.
# The scripts are package data (progress/lua/*.lua), each with its KEYS, ARGV and reply in
# its header.
APPEND_LUA = lua_source("progress", "append.lua")

STATE_LUA = lua_source("progress", "state.lua")

APPEND = LuaScript(APPEND_LUA)

# On Redis Cluster the script publishes on the stream's shard (SPUBLISH, Redis 7): the channel
# carries the stream's hash tag, so it hashes to the slot of the keys the call touches. Plain
# PUBLISH on a cluster is sent to every node, whatever the number of shards.
APPEND_SHARDED_LUA = APPEND_LUA.replace("redis.call('PUBLISH',", "redis.call('SPUBLISH',")
assert APPEND_SHARDED_LUA != APPEND_LUA, "append.lua must PUBLISH with redis.call('PUBLISH', ..."
APPEND_SHARDED = LuaScript(APPEND_SHARDED_LUA)

#: A sync client of either mode; :func:`connect` picks one from the URL.
SyncClient = redis.Redis | redis.RedisCluster
#: An asyncio client of either mode; :func:`connect_async` picks one from the URL.
AsyncClient = redis.asyncio.Redis | redis.asyncio.RedisCluster

_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)


@dataclass
class _StreamBatch:
    """Everything one append call writes to one stream."""

    payloads: list[bytes] = field(default_factory=list)
    #: Per payload: the event id when the store must not append it twice, else ''.
    dedupe_ids: list[str] = field(default_factory=list)
    snapshots: dict[str, dict[str, str]] = field(default_factory=dict)

    def call_part(
        self, layout: KeyLayout, stream: str
    ) -> tuple[list[str], list[str | bytes | int]]:
        """This stream's KEYS and ARGV in an append call."""
        keys = [layout.events(stream), layout.meta(stream), layout.seen(stream)]
        user = user_of_stream(stream)
        snapshots = self.snapshots if user is not None else {}
        args: list[str | bytes | int] = [
            layout.channel(stream),
            len(self.payloads),
            len(snapshots),
            *self.payloads,
            *self.dedupe_ids,
        ]
        if snapshots and user is not None:
            keys.append(layout.tasks(user))
            for task_id, fields in snapshots.items():
                keys.append(layout.task(user, task_id))
                args += [task_id, 2 * len(fields)]
                for item in fields.items():
                    args += item
        return keys, args


def append_calls(
    streams: dict[str, _StreamBatch], layout: KeyLayout, settings: StoreSettings
) -> list[tuple[list[str], list[str | bytes | int]]]:
    """KEYS and ARGV of the append calls that store ``streams``, in order."""
    epoch = new_epoch()
    names = list(streams)
    calls = []
    size = settings.streams_per_call
    for first in range(0, len(names), size):
        chunk = names[first : first + size]
        keys: list[str] = []
        args: list[str | bytes | int] = [
            epoch,
            int(settings.retention_seconds * 1000),
            settings.max_stream_length,
            len(chunk),
        ]
        for name in chunk:
            part_keys, part_args = streams[name].call_part(layout, name)
            keys += part_keys
            args += part_args
        calls.append((keys, args))
    return calls


def _by_stream(
    streams: dict[str, _StreamBatch], replies: Sequence[Sequence[Sequence[bytes]]]
) -> dict[str, Sequence[bytes]]:
    results = [result for reply in replies for result in reply]
    return dict(zip(streams, results, strict=True))


def group_by_stream(
    batch: Sequence[tuple[EventEnvelope, Sequence[str]]],
) -> tuple[dict[str, _StreamBatch], list[tuple[str, int, bytes]]]:
    """Per-stream batches (snapshots merged in order) and where each stored copy lands."""
    streams: dict[str, _StreamBatch] = {}
    placements: list[tuple[str, int, bytes]] = []
    for event, recipients in batch:
        data = encode_event(event)
        fields = snapshot_fields(event)
        for stream in streams_for(event, recipients):
            group = streams.setdefault(stream, _StreamBatch())
            placements.append((stream, len(group.payloads), data))
            group.payloads.append(data)
            group.dedupe_ids.append(str(event.event_id) if event.important else "")
            if fields is not None and event.user_id and stream == user_stream(event.user_id):
                group.snapshots.setdefault(fields["task_id"], {}).update(fields)
    return streams, placements


_ALIVE = frozenset(
    {
        "task.progress-started",
        "task.progress-updated",
        "task.progress-heartbeat",
        "task.progress-retrying",
    }
)


def running_changes(
    batch: Sequence[tuple[EventEnvelope, Sequence[str]]],
) -> tuple[dict[str, float], list[str]]:
    """Members of the running-task index to refresh (with a score) and to remove.

    A member is ``"<user_id> <task_id>"``; the score is the time of the last sign of life (ms).
    """
    alive: dict[str, float] = {}
    ended: list[str] = []
    for event, _ in batch:
        if event.task_id is None or event.user_id is None:
            continue
        member = f"{event.user_id} {event.task_id}"
        if event.type in _ALIVE:
            alive[member] = event.occurred_at.timestamp() * 1000
        elif event.type in TERMINAL_TASK_TYPES:
            alive.pop(member, None)
            ended.append(member)
    return alive, ended


def _placed(
    placements: list[tuple[str, int, bytes]], results: dict[str, Sequence[bytes]]
) -> list[StoredEvent]:
    stored = []
    for stream, index, data in placements:
        result = results[stream]
        stored.append(StoredEvent(stream, result[0].decode(), result[index + 1].decode(), data))
    return stored


def parse_live_message(payload: bytes) -> tuple[str, str, bytes]:
    """Split a pub/sub payload into (epoch, stream id, event JSON)."""
    epoch, stream_id, data = payload.split(b" ", 2)
    return epoch.decode(), stream_id.decode(), data


# The stores' clients never decode replies (no decode_responses): a reply holds bytes where
# redis-py's types allow bytes or str for either mode. The casts to these types say so.
_Entries = list[tuple[bytes, dict[bytes, bytes]]]
_Hash = dict[bytes, bytes]


def _entries(stream: str, epoch: str, raw: _Entries) -> list[StoredEvent]:
    return [StoredEvent(stream, epoch, id_.decode(), fields[b"e"]) for id_, fields in raw]


def _state(raw: Sequence[bytes]) -> StreamState:
    epoch, last_id, trimmed = (part.decode() for part in raw)
    return StreamState(epoch, last_id, trimmed or None)


def _snapshots(raw: Sequence[dict[bytes, bytes]]) -> list[TaskSnapshot]:
    return [
        TaskSnapshot.from_hash({k.decode(): v.decode() for k, v in fields.items()})
        for fields in raw
        if fields
    ]


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"Redis unavailable: {exc}") from exc


@asynccontextmanager
async def _translated_async() -> Any:
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"Redis unavailable: {exc}") from exc


#: The asyncio cluster client's connections per node (opened on demand, kept for reuse).
CLUSTER_MAX_CONNECTIONS_PER_NODE = 1000


def _for_client(settings: StoreSettings, client: SyncClient | AsyncClient) -> StoreSettings:
    # On a cluster one script call may touch one slot: one stream (one hash tag) per call.
    if isinstance(client, redis.RedisCluster | redis.asyncio.RedisCluster):
        return settings.model_copy(update={"streams_per_call": 1})
    return settings


def connect(url: str, **options: Any) -> SyncClient:
    """A sync client with short timeouts, so a dead Redis never hangs a task for long; a
    ``RedisCluster`` for a ``redis+cluster://`` URL (:mod:`progress.redis_cluster`)."""
    options.setdefault("socket_timeout", 2.0)
    options.setdefault("socket_connect_timeout", 2.0)
    if is_cluster_url(url):
        return connect_cluster(url, **options)
    options.setdefault("health_check_interval", 30)
    return redis.Redis.from_url(url, **options)


def connect_async(
    url: str,
    max_connections: int = 500,
    client_class: type[redis.asyncio.Redis] = redis.asyncio.Redis,
    cluster_class: Callable[..., redis.asyncio.RedisCluster] = redis.asyncio.RedisCluster,
    **options: Any,
) -> AsyncClient:
    """An asyncio client; same defaults as :func:`connect`, and retries on stale connections.

    Its pool waits for a free connection (up to 5 s) instead of failing when a burst needs
    more than ``max_connections`` at once. A ``redis+cluster://`` URL gives a
    ``cluster_class`` (redis-py's ``RedisCluster`` or a subclass, called with its constructor's
    arguments): ``client_class`` does not apply, and each node's pool holds up to
    :data:`CLUSTER_MAX_CONNECTIONS_PER_NODE` (redis-py's cluster pool fails at once with
    MaxConnectionsError when full instead of waiting, so a small pool failed the catch-up
    of every stream after a slot moved).
    """
    if is_cluster_url(url):
        options.setdefault("socket_timeout", 5.0)
        options.setdefault("socket_connect_timeout", 2.0)
        per_node = max(max_connections, CLUSTER_MAX_CONNECTIONS_PER_NODE)
        return connect_cluster_async(url, cluster_class, max_connections=per_node, **options)
    # An explicit asyncio Retry: with the default, the first command on a connection that a
    # Redis restart closed fails instead of reconnecting.
    options.setdefault("retry", AsyncRetry(ExponentialBackoff(cap=0.5, base=0.05), 3))
    options.setdefault("socket_timeout", 5.0)
    options.setdefault("socket_connect_timeout", 2.0)
    options.setdefault("health_check_interval", 30)
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=5, **options
    )
    return client_class.from_pool(pool)


class RedisEventStore:
    """EventWriter and EventReader on a sync redis-py client."""

    def __init__(self, client: SyncClient, settings: StoreSettings | None = None) -> None:
        self.client = client
        self.settings = _for_client(settings or StoreSettings(), client)
        self.layout = KeyLayout(self.settings.key_prefix)
        self._state = client.register_script(STATE_LUA)

    def append(self, event: EventEnvelope, recipients: Sequence[str] = ()) -> list[StoredEvent]:
        """Store ``event`` in every stream it belongs to; return where it was stored."""
        return self.append_many([(event, recipients)])

    def append_many(
        self, batch: Sequence[tuple[EventEnvelope, Sequence[str]]]
    ) -> list[StoredEvent]:
        """Store several events in one pipelined round trip, in order."""
        streams, placements = group_by_stream(batch)
        calls = append_calls(streams, self.layout, self.settings)
        client = self.client
        script = APPEND_SHARDED if isinstance(client, redis.RedisCluster) else APPEND
        commands = [script.call(keys, args) for keys, args in calls]
        alive, ended = running_changes(batch)
        if ended:
            commands.append(("ZREM", self.layout.running(), *ended))
        if alive:
            scored = [part for member, score in alive.items() for part in (score, member)]
            commands.append(("ZADD", self.layout.running(), *scored))
        with _translated():
            replies = run_commands_on(client, commands, (script,))
        return _placed(placements, _by_stream(streams, replies[: len(calls)]))

    def read_after(self, stream: str, after_id: str, limit: int) -> list[StoredEvent]:
        """Up to ``limit`` events of ``stream`` with ids after ``after_id``, oldest first."""
        state = self.stream_state(stream)
        with _translated():
            raw = self.client.xrange(self.layout.events(stream), f"({after_id}", "+", limit)
        return _entries(stream, state.epoch, cast(_Entries, raw))

    def stream_state(self, stream: str) -> StreamState:
        """The stream's epoch (created if new), last id and trim mark."""
        keys = [self.layout.events(stream), self.layout.meta(stream)]
        with _translated():
            raw = self._state(keys, [new_epoch(), int(self.settings.retention_seconds * 1000)])
        return _state(raw)

    def task_snapshot(self, user_id: str, task_id: str) -> TaskSnapshot | None:
        """The latest snapshot of ``user_id``'s task, or None if the user has no such task."""
        with _translated():
            raw = self.client.hgetall(self.layout.task(user_id, task_id))
        found = _snapshots([cast(_Hash, raw)])
        return found[0] if found else None

    def recent_tasks(self, user_id: str, limit: int = 50) -> list[TaskSnapshot]:
        """The user's most recently updated tasks, newest first."""
        with _translated():
            ids = cast(list[bytes], self.client.zrevrange(self.layout.tasks(user_id), 0, limit - 1))
            pipe = self.client.pipeline(transaction=False)
            for task_id in ids:
                pipe.hgetall(self.layout.task(user_id, task_id.decode()))
            return _snapshots(pipe.execute())

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()

    def quiet_tasks(self, silent_for: float) -> list[tuple[str, str, float]]:
        """Running tasks with no sign of life for ``silent_for`` seconds: (user, task, last ms)."""
        horizon = (time.time() - silent_for) * 1000
        with _translated():
            raw = cast(
                list[tuple[bytes, float]],
                self.client.zrangebyscore(self.layout.running(), "-inf", horizon, withscores=True),
            )
        found = []
        for member, score in raw:
            user_id, _, task_id = member.decode().partition(" ")
            found.append((user_id, task_id, float(score)))
        return found

    def forget_running(self, user_id: str, task_id: str) -> None:
        """Drop a task from the running index (it was declared lost)."""
        with _translated():
            self.client.zrem(self.layout.running(), f"{user_id} {task_id}")

    def ping(self) -> None:
        """Raise StoreUnavailable unless Redis answers."""
        with _translated():
            self.client.ping()


class AsyncRedisEventStore:
    """The same store on an asyncio redis-py client, for the API."""

    def __init__(self, client: AsyncClient, settings: StoreSettings | None = None) -> None:
        self.client = client
        self.settings = _for_client(settings or StoreSettings(), client)
        self.layout = KeyLayout(self.settings.key_prefix)
        cluster = isinstance(client, redis.asyncio.RedisCluster)
        self._append = client.register_script(APPEND_SHARDED_LUA if cluster else APPEND_LUA)
        self._state = client.register_script(STATE_LUA)
        self._workflow = client.register_script(WORKFLOW_LUA)

    async def append(
        self, event: EventEnvelope, recipients: Sequence[str] = ()
    ) -> list[StoredEvent]:
        """Store ``event`` in every stream it belongs to; return where it was stored."""
        return await self.append_many([(event, recipients)])

    async def append_many(
        self, batch: Sequence[tuple[EventEnvelope, Sequence[str]]]
    ) -> list[StoredEvent]:
        """Store several events in one pipelined round trip, in order."""
        streams, placements = group_by_stream(batch)
        calls = append_calls(streams, self.layout, self.settings)
        alive, ended = running_changes(batch)
        client = self.client
        if isinstance(client, redis.asyncio.RedisCluster):
            commands = [APPEND_SHARDED.call(keys, args) for keys, args in calls]
            if ended:
                commands.append(("ZREM", self.layout.running(), *ended))
            if alive:
                scored = [part for member, score in alive.items() for part in (score, member)]
                commands.append(("ZADD", self.layout.running(), *scored))
            async with _translated_async():
                cluster_replies = await run_cluster_commands_async(
                    client, commands, (APPEND_SHARDED_LUA,)
                )
            return _placed(placements, _by_stream(streams, cluster_replies[: len(calls)]))
        async with _translated_async():
            pipe = client.pipeline(transaction=False)
            for keys, args in calls:
                await self._append(keys, args, client=pipe)
            if ended:
                pipe.zrem(self.layout.running(), *ended)
            if alive:
                pipe.zadd(self.layout.running(), alive)
            replies = (await pipe.execute())[: len(calls)]
        return _placed(placements, _by_stream(streams, replies))

    async def read_after(self, stream: str, after_id: str, limit: int) -> list[StoredEvent]:
        """Up to ``limit`` events of ``stream`` with ids after ``after_id``, oldest first."""
        state = await self.stream_state(stream)
        async with _translated_async():
            raw = await self.client.xrange(self.layout.events(stream), f"({after_id}", "+", limit)
        return _entries(stream, state.epoch, cast(_Entries, raw))

    async def stream_state(self, stream: str) -> StreamState:
        """The stream's epoch (created if new), last id and trim mark."""
        keys = [self.layout.events(stream), self.layout.meta(stream)]
        async with _translated_async():
            raw = await self._state(
                keys, [new_epoch(), int(self.settings.retention_seconds * 1000)]
            )
        return _state(raw)

    async def task_snapshot(self, user_id: str, task_id: str) -> TaskSnapshot | None:
        """The latest snapshot of ``user_id``'s task, or None if the user has no such task."""
        async with _translated_async():
            raw = await self.client.hgetall(self.layout.task(user_id, task_id))
        found = _snapshots([cast(_Hash, raw)])
        return found[0] if found else None

    async def recent_tasks(self, user_id: str, limit: int = 50) -> list[TaskSnapshot]:
        """The user's most recently updated tasks, newest first."""
        async with _translated_async():
            ids = cast(
                list[bytes], await self.client.zrevrange(self.layout.tasks(user_id), 0, limit - 1)
            )
            pipe = self.client.pipeline(transaction=False)
            for task_id in ids:
                pipe.hgetall(self.layout.task(user_id, task_id.decode()))
            return _snapshots(await pipe.execute())

    async def workflow_snapshot(self, user_id: str, workflow_id: str) -> WorkflowProgress | None:
        """The current counts of ``user_id``'s workflow as a (not stored) ``workflow.progress``,
        or None if nothing of it is known."""
        keys, args = peek_call(self.layout, user_id, workflow_id)
        async with _translated_async():
            reply = await self._workflow(keys, args)
        tally = Tally.from_reply(reply)
        return tally.event(user_id, workflow_id, None) if tally.total else None

    async def ping(self) -> float:
        """Round-trip time to Redis in seconds; StoreUnavailable if it does not answer."""
        async with _translated_async():
            started = time.perf_counter()
            await self.client.ping()
        return time.perf_counter() - started
