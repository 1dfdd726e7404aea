"""The hub's pub/sub link on a Redis Cluster: sharded pub/sub, one connection per master.

A user's channel (``rt:{u:<id>}:live``) carries the user's hash tag, so it hashes to the slot
of the user's stream; the append script ``SPUBLISH``-es there and the message stays on that
shard. This link reads the slot map (``CLUSTER SLOTS``) from the first seed that answers, opens
one :class:`PubSubLink` per master and ``SSUBSCRIBE``-s each channel on the master serving its
slot: per process one connection per shard, not one per user. The control channel is plain
pub/sub (``SUBSCRIBE`` on the first master; a cluster delivers ``PUBLISH`` on every node): it
carries a few messages a minute, so its cost on every node does not matter.

Nothing here follows a moved slot by itself: a ``MOVED`` error, a ``sunsubscribe`` nobody asked
for (Redis 7 sends one when a slot leaves the node, in a reshard or a failover) or any lost
connection ends :meth:`ShardedLink.watch` with LinkLost. The hub then opens a new link, which
reads the slot map again, re-subscribes, and tells every stream to catch up from its cursor
(events stored meanwhile are read from the streams).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable

import redis.asyncio
from redis.crc import key_slot
from redis.exceptions import RedisError

from api.hub.pubsub_link import LinkLost, PubSubLink, RedisAddress, Replies
from progress.redis_cluster import ClusterUrl, is_cluster_url

Node = tuple[str, int]
#: Slot ranges (first, last) and the master serving each.
SlotMap = list[tuple[int, int, Node]]


def link_address(url: str) -> RedisAddress | ClusterUrl:
    """Where the hub's link connects: a cluster's seeds for ``redis+cluster://``, else one
    server (:meth:`RedisAddress.from_url`)."""
    return ClusterUrl.parse(url) if is_cluster_url(url) else RedisAddress.from_url(url)


async def read_slot_map(seeds: ClusterUrl, timeout: float = 1.0) -> SlotMap:
    """``CLUSTER SLOTS`` from the first seed that answers; LinkLost when none does."""
    failures = []
    for host, port in seeds.nodes:
        client = redis.asyncio.Redis(
            host=host,
            port=port,
            username=seeds.username,
            password=seeds.password,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
        )
        try:
            # Two arguments, not "CLUSTER SLOTS": the raw reply, without redis-py's parsing
            # into a dict. execute_command is unannotated in redis-py.
            raw = await client.execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
        except (RedisError, OSError) as exc:
            failures.append(f"{host}:{port}: {exc}")
            continue
        finally:
            await client.aclose()
        return [(int(first), int(last), _node(master)) for first, last, master, *_ in raw]
    raise LinkLost(f"no cluster seed answered CLUSTER SLOTS ({'; '.join(failures)})")


def _node(entry: list[bytes | int]) -> Node:
    host = entry[0].decode() if isinstance(entry[0], bytes) else str(entry[0])
    return host, int(entry[1])


def node_of(slots: SlotMap, channel: str) -> Node:
    """The master serving ``channel``'s slot."""
    slot = key_slot(channel.encode())
    for first, last, node in slots:
        if first <= slot <= last:
            return node
    raise LinkLost(f"no master serves slot {slot} (of {channel!r})")


class ShardedLink:
    """One :class:`PubSubLink` per master of a cluster, used by the hub as one link."""

    def __init__(
        self, links: dict[Node, PubSubLink], slots: SlotMap, plain: frozenset[str]
    ) -> None:
        self._links = links
        self._slots = slots
        self._plain = plain
        #: Channels the hub asked to leave: their ``sunsubscribe`` is expected.
        self._leaving: set[str] = set()
        self._moved: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._moved_reason = ""

    @classmethod
    async def open(
        cls,
        seeds: ClusterUrl,
        on_replies: Callable[[Replies], None],
        plain: Iterable[str] = (),
        timeout: float = 2.0,
    ) -> ShardedLink:
        """Read the slot map and connect to every master within ``timeout``; OSError or
        LinkLost when that fails (nothing stays open then)."""
        slots = await read_slot_map(seeds, timeout / 2)
        links: dict[Node, PubSubLink] = {}
        holder: list[ShardedLink] = []

        def deliver(replies: Replies) -> None:
            holder[0].on_replies(replies, on_replies)

        try:
            for node in sorted({node for _, _, node in slots}):
                address = RedisAddress(node[0], node[1], None, seeds.username, seeds.password)
                links[node] = await PubSubLink.open(address, deliver, timeout)
        except BaseException:
            for link in links.values():
                link.close()
            raise
        holder.append(cls(links, slots, frozenset(plain)))
        return holder[0]

    @property
    def slot_moved(self) -> bool:
        """A channel's slot left its master (the link is about to be lost)."""
        return self._moved.done()

    def on_replies(self, replies: Replies, deliver: Callable[[Replies], None]) -> None:
        """Pass replies on; a ``sunsubscribe`` the hub did not ask for means the channel's slot
        left that node: the link is lost (the hub re-reads the slot map)."""
        for kind, channel, _ in replies:
            if kind == b"sunsubscribe":
                name = channel.decode()
                if name in self._leaving:
                    self._leaving.discard(name)
                elif not self._moved.done():
                    self._moved_reason = f"the slot of {name} moved"
                    self._moved.set_result(None)
        deliver(replies)

    def subscribe(self, *channels: str) -> None:
        """SSUBSCRIBE each channel on its master, one command per slot (plain channels:
        SUBSCRIBE on the first master)."""
        for (node, _), names in self._by_slot(channels).items():
            self._links[node].ssubscribe(*names)
        plain = [channel for channel in channels if channel in self._plain]
        if plain:
            self._first().subscribe(*plain)

    def unsubscribe(self, *channels: str) -> None:
        """SUNSUBSCRIBE (UNSUBSCRIBE for plain channels)."""
        self._leaving.update(channel for channel in channels if channel not in self._plain)
        for (node, _), names in self._by_slot(channels).items():
            self._links[node].sunsubscribe(*names)
        plain = [channel for channel in channels if channel in self._plain]
        if plain:
            self._first().unsubscribe(*plain)

    async def watch(self, idle_seconds: float) -> None:
        """Wait until any master's link is lost or a slot moves; close all, raise LinkLost."""
        watchers: list[asyncio.Future[None]] = [
            asyncio.ensure_future(link.watch(idle_seconds)) for link in self._links.values()
        ]
        try:
            done, _ = await asyncio.wait(
                [*watchers, self._moved], return_when=asyncio.FIRST_COMPLETED
            )
            reason = self._moved_reason or "a shard's pub/sub link closed"
            for finished in done:
                error = None if finished is self._moved else finished.exception()
                reason = str(error) if error is not None else reason
        finally:
            for watcher in watchers:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError, LinkLost):
                    await watcher
            self.close()
        raise LinkLost(reason)

    def close(self) -> None:
        """Close every master's link (idempotent)."""
        for link in self._links.values():
            link.close()

    def _first(self) -> PubSubLink:
        return self._links[min(self._links)]

    def _by_slot(self, channels: Iterable[str]) -> dict[tuple[Node, int], list[str]]:
        # One SSUBSCRIBE per slot: Redis refuses one whose channels span slots (CROSSSLOT).
        grouped: dict[tuple[Node, int], list[str]] = {}
        for channel in channels:
            if channel not in self._plain:
                key = (node_of(self._slots, channel), key_slot(channel.encode()))
                grouped.setdefault(key, []).append(channel)
        return grouped
