"""Auto-pipelining on a Redis Cluster: one :class:`BatchingRedis` per master.

redis-py's ``RedisCluster`` takes a pooled connection per command in flight, so a burst of
2,000 stream opens held 52-64 connections per API process and paid a round trip per command.
:class:`ClusterBatchingRedis` routes each single command by its key's slot to the master
serving it and queues it on that master's :class:`BatchingRedis`: the commands of one
event-loop turn for keys on one master go out in one write, on a few connections per master.

Routing. The slot map is read with ``CLUSTER SLOTS`` (:func:`read_slot_map`: the URL's seeds
first, then the masters known so far) on first use and again after a failure, once for all
callers waiting on it. A ``MOVED`` reply sends that command to the node it names and refreshes
the map; ``ASK`` (a slot being migrated) sends ``ASKING`` and the command together to the node it
names; a connection that cannot be made (:class:`RedisUnreachable`), ``CLUSTERDOWN``,
``TRYAGAIN`` or ``READONLY`` (a demoted master), none of which ran the command, refresh the map
and try again after a short backoff: at most :data:`ATTEMPTS` tries, then the caller gets
:class:`RedisUnreachable` (answered 503). A connection lost or a timeout after the command was
sent is raised at once (BatchingRedis already re-sent what was unanswered), the map refreshed
behind it.

Which node: EVAL/EVALSHA/FCALL by their first declared key, XREAD/XREADGROUP by the first
stream, every other command by its first argument (:func:`routing_key`). A multi-key command is
routed by its first key; Redis itself refuses keys of several slots (``CROSSSLOT``), which is
raised to the caller. ``SCRIPT LOAD`` and ``PING`` go to every master of the current map (a
script must be known wherever its keys may live; Redis answers only when every master does);
commands with no key (``INFO``, ``SCAN`` with ``target_nodes``...), two-word commands
(``XINFO STREAM``) and pipelines are the inherited ``RedisCluster``'s, unchanged. ``PING``
answers True while one master does (the health probe: one failed master must not refuse the
opens of users on the others).

It *is* a ``RedisCluster`` (a subclass), so the callers that take a cluster pipeline or avoid
``MULTI`` on a cluster (leases refresh, preferences, realtime mode, the store's append) keep
their ``isinstance`` branch. Only public interfaces of redis-py: ``RedisCluster`` and
``ClusterNode``'s constructor arguments and attributes, ``redis.crc.key_slot``, the exception
classes (``MovedError``/``AskError``'s ``node_addr``) and what :class:`BatchingRedis` uses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot
from redis.exceptions import AskError, ClusterDownError, MovedError, ReadOnlyError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.hub.pubsub_link import LinkLost
from api.hub.redis_batching import BatchedScript, BatchingRedis, RedisUnreachable
from api.hub.sharded_link import Node, SlotMap, read_slot_map
from progress.redis_cluster import ClusterUrl

#: Tries of one command (the first included) across refreshes of the slot map.
ATTEMPTS = 8
#: Connection options of the cluster client that each master's batching client takes too.
_NODE_OPTIONS = (
    "username",
    "password",
    "socket_timeout",
    "socket_connect_timeout",
    "decode_responses",
    "client_name",
)
#: Errors that prove the command did not run (no connection could be made, or the node refused
#: it): refresh the slot map and try again. A lost connection or a timeout after the command
#: was sent is not retried here: BatchingRedis already re-sent it (a token's GETDEL run twice
#: reads nil), so the caller gets it, and the map is refreshed for the next command.
_RETRY_AFTER_REFRESH = (RedisUnreachable, LinkLost, ClusterDownError, TryAgainError, ReadOnlyError)
_STALE_MAP = (RedisConnectionError, RedisTimeoutError, OSError)
_EVERY_MASTER = frozenset({"SCRIPT LOAD", "PING"})
#: Commands whose first argument is not a key (or that have none): RedisCluster routes them.
_NOT_BY_FIRST_ARGUMENT = frozenset(
    {
        "ASKING", "BITOP", "BLMPOP", "BZMPOP", "CLIENT", "CLUSTER", "COMMAND", "CONFIG",
        "DBSIZE", "ECHO", "FLUSHALL", "FLUSHDB", "FUNCTION", "INFO", "KEYS", "LMPOP", "MEMORY",
        "OBJECT", "RANDOMKEY", "READONLY", "SCAN", "SCRIPT", "SINTERCARD", "TIME", "WAIT",
        "XINFO", "ZDIFF", "ZINTER", "ZINTERCARD", "ZMPOP", "ZUNION",
    }
)  # fmt: skip
_BY_DECLARED_KEYS = frozenset({"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"})


def command_name(args: Sequence[Any]) -> str:
    """The command's name, upper case (``"SCRIPT LOAD"`` as redis-py spells it)."""
    name = args[0]
    return (name.decode() if isinstance(name, bytes) else str(name)).upper()


def routing_key(args: Sequence[Any]) -> Any:
    """The key whose slot decides the node of ``args``, or None when the command has none
    (or names it where this does not look)."""
    name = command_name(args)
    if " " in name or name in _NOT_BY_FIRST_ARGUMENT:
        return None
    if name in _BY_DECLARED_KEYS:
        return args[3] if len(args) > 3 and int(args[2]) > 0 else None
    if name in ("XREAD", "XREADGROUP"):
        # redis-py sends the keyword as bytes (b"STREAMS"); XREADGROUP's group and consumer
        # names come first (GROUP <group> <consumer>) and may be spelt "streams" too.
        first = 4 if name == "XREADGROUP" else 1
        at = next((i for i in range(first, len(args)) if _word(args[i]) == "STREAMS"), -1)
        return args[at + 1] if 0 <= at < len(args) - 1 else None
    return args[1] if len(args) > 1 else None


def _word(arg: Any) -> str:
    return (arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)).upper()


def slot_of(key: Any) -> int:
    """The cluster slot of ``key`` (hash tags included)."""
    if isinstance(key, bytes | bytearray | memoryview):
        return key_slot(bytes(key))
    return key_slot(str(key).encode())


def slot_table(slots: SlotMap) -> list[Node | None]:
    """The master of each of the 16,384 slots (None where none serves it)."""
    table: list[Node | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
    for first, last, node in slots:
        table[first : last + 1] = [node] * (last - first + 1)
    return table


def backoff(attempt: int) -> float:
    """Seconds to wait before try ``attempt + 1`` (a failover takes a few seconds)."""
    return min(0.5, 0.05 * 2.0**attempt)


class ClusterBatchingRedis(redis.asyncio.RedisCluster):
    """``redis.asyncio.RedisCluster`` whose single keyed commands are pipelined per master.

    ``node_connections`` bounds each master's batching client (its sender tasks and pooled
    connections); the inherited cluster client keeps its own pools for pipelines and keyless
    commands.
    """

    def __init__(self, *args: Any, node_connections: int = 3, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        seeds = [(node.host, int(node.port)) for node in kwargs.get("startup_nodes") or []]
        if kwargs.get("host"):
            seeds.append((str(kwargs["host"]), int(kwargs.get("port", 6379))))
        self._seeds = tuple(seeds)
        self._node_options = {k: kwargs[k] for k in _NODE_OPTIONS if kwargs.get(k) is not None}
        self._node_connections = node_connections
        self._table: list[Node | None] | None = None
        self._masters: tuple[Node, ...] = ()
        self._refreshing: asyncio.Task[None] | None = None
        self._batchers: dict[Node, BatchingRedis] = {}
        #: Slot map reads so far (a test and the docs count them).
        self.refreshes = 0

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if "target_nodes" in options:
            return await super().execute_command(*args, **options)
        name = command_name(args)
        if name in _EVERY_MASTER:
            return await self._on_every_master(name, args, options)
        key = routing_key(args)
        if key is None:
            return await super().execute_command(*args, **options)
        return await self._on_slot(slot_of(key), args, options)

    def register_script(self, script: str | bytes) -> AsyncScript:  # type: ignore[override]
        return BatchedScript(self, script)

    def node_clients(self) -> dict[Node, BatchingRedis]:
        """The batching client of each master talked to so far."""
        return dict(self._batchers)

    async def aclose(self) -> None:
        if self._refreshing is not None:
            self._refreshing.cancel()
        for batcher in self._batchers.values():
            await batcher.aclose()
        self._batchers.clear()
        await super().aclose()

    async def refresh_slots(self) -> None:
        """Read the slot map again (callers meanwhile share that one read)."""
        await asyncio.shield(self._refresh_soon())

    async def _read_slots(self) -> None:
        nodes = tuple(dict.fromkeys((*self._seeds, *self._masters)))
        seeds = ClusterUrl(
            nodes, self._node_options.get("username"), self._node_options.get("password")
        )
        slots = await read_slot_map(seeds)
        self.refreshes += 1
        self._table = slot_table(slots)
        self._masters = tuple(dict.fromkeys(node for _first, _last, node in slots))

    async def _master_of(self, slot: int) -> Node:
        if self._table is None:
            await self.refresh_slots()
        node = self._table[slot] if self._table is not None else None
        if node is None:
            raise ClusterDownError(f"CLUSTERDOWN no master serves slot {slot}")
        return node

    async def _on_slot(self, slot: int, args: Sequence[Any], options: dict[str, Any]) -> Any:
        redirect: Node | None = None
        asking = False
        error: Exception = ClusterDownError(f"CLUSTERDOWN slot {slot} not reached")
        for attempt in range(ATTEMPTS):
            try:
                node = redirect or await self._master_of(slot)
                if asking:
                    return await self._asking(node, args, options)
                return await self._node(node).execute_command(*args, **options)
            except MovedError as exc:  # before AskError, its base class
                error = exc
                redirect, asking = exc.node_addr, False
                self._refresh_soon()
            except AskError as exc:
                error, redirect, asking = exc, exc.node_addr, True
            except _RETRY_AFTER_REFRESH as exc:
                error, redirect, asking = exc, None, False
                if attempt < ATTEMPTS - 1:
                    await self._recover(attempt)
            except _STALE_MAP:
                self._refresh_soon()
                raise
        # Callers answer an unreachable store with 503 (a ResponseError would be a 500).
        raise RedisUnreachable(f"slot {slot}: {error}") from error

    async def _on_every_master(
        self, name: str, args: Sequence[Any], options: dict[str, Any]
    ) -> Any:
        for attempt in range(ATTEMPTS):
            try:
                if self._table is None:
                    await self.refresh_slots()
                if not self._masters:
                    raise ClusterDownError("CLUSTERDOWN the slot map names no master")
                calls = [self._node(n).execute_command(*args, **options) for n in self._masters]
                if name == "PING":
                    return await self._any_answers(calls)
                return (await asyncio.gather(*calls))[0]
            except _RETRY_AFTER_REFRESH:
                if attempt == ATTEMPTS - 1:
                    raise
                await self._recover(attempt)
        raise AssertionError("unreachable")  # the loop returns or raises

    async def _any_answers(self, pings: list[Any]) -> bool:
        # Redis is up while one master answers: one lost master (a failover under way) must
        # not make the health probe refuse the opens of every user on the healthy ones.
        # The first True answers: a master that hangs must not hold the probe past its timeout.
        tasks = [asyncio.ensure_future(ping) for ping in pings]
        error: Exception | None = None
        try:
            for answered in asyncio.as_completed(tasks):
                try:
                    if await answered is True:
                        return True
                except Exception as exc:
                    error = error or exc
        finally:
            for task in tasks:
                task.cancel()
        raise error or ClusterDownError("CLUSTERDOWN no master answered PING")

    async def _asking(self, node: Node, args: Sequence[Any], options: dict[str, Any]) -> Any:
        # ASKING holds for the next command on the same connection only: one pipeline.
        pipe = self._node(node).pipeline(transaction=False)
        pipe.execute_command("ASKING")
        pipe.execute_command(*args, **options)
        replies = await pipe.execute(raise_on_error=False)
        if isinstance(replies[1], Exception):
            raise replies[1]
        return replies[1]

    async def _recover(self, attempt: int) -> None:
        await asyncio.sleep(backoff(attempt))
        try:
            await self.refresh_slots()
        except (LinkLost, OSError):
            pass  # no seed answered: the next try fails or finds the cluster back

    def _refresh_soon(self) -> asyncio.Task[None]:
        """The slot map read under way, or a new one."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._read_slots())
            # Its waiters may all be cancelled (a probe's timeout) before it fails.
            self._refreshing.add_done_callback(_retrieve)
        return self._refreshing

    def _node(self, node: Node) -> BatchingRedis:
        batcher = self._batchers.get(node)
        if batcher is None:
            pool = redis.asyncio.BlockingConnectionPool(
                host=node[0],
                port=node[1],
                max_connections=self._node_connections,
                timeout=5,
                retry=AsyncRetry(ExponentialBackoff(cap=0.5, base=0.05), 3),
                health_check_interval=30,
                **self._node_options,
            )
            batcher = cast(BatchingRedis, BatchingRedis.from_pool(pool))  # owns the pool
            self._batchers[node] = batcher
        return batcher


def _retrieve(done: asyncio.Future[None]) -> None:
    # A refresh nobody awaited: read its outcome so asyncio does not log it.
    if not done.cancelled():
        done.exception()
