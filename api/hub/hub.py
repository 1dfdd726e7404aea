"""The hub: ONE Redis pub/sub connection per API process, routing events to local streams.

Concurrency (all on the event loop, no threads):

    pub/sub link ── a batch per socket read ──▶ route ──▶ Backpressure.admit (progress updates
    (api/hub/pubsub_link.py)                      held per stream while saturated:
                                                  api/hub/backpressure.py)
                                              ──▶ Connection.offer (bounded queues)
                 ◀─ subscribe confirmations resolve attach() waiters
    lease task  ── every lease/3 s, in slices of 100 ──▶ registry.refresh(leases)
    attach()    ── first local stream of a user ──▶ SUBSCRIBE its channel, wait for the ack
    detach()    ── last local stream of a user  ──▶ UNSUBSCRIBE

On a Redis Cluster the link is a ``ShardedLink`` (api/hub/sharded_link.py): SSUBSCRIBE on the
master of each channel's slot, one connection per master; it ends like a lost link when a slot
moves, and the same reconnect re-reads the slot map.

The hub is always subscribed to the broadcast channel and the control channel (access
revocations clear the authorizer's cache on every instance at once; preference changes reach
the user's open streams; a new realtime mode moves the streams of users who must now poll).
When the pub/sub link
drops it retries with backoff, re-subscribes everything, then sends RESYNC to every
connection, which catches up from its own cursor. Routing parses each message's JSON once,
whatever the number of streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable

import orjson
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.auth.authz import Authorizer
from api.event_meta import EventMeta, event_meta
from api.hub.backpressure import Backpressure
from api.hub.leases import ConnectionRegistry, Lease
from api.hub.pubsub_link import PubSubLink, RedisAddress, Replies
from api.hub.sharded_link import ShardedLink
from api.preferences import NotificationPreferences
from api.realtime_mode import ModeRule, RealtimeModeStore, mode_for
from api.stream.connection import Connection, Signal
from api.stream.delivery import Delivery
from progress.errors import StoreUnavailable
from progress.keys import BROADCAST, KeyLayout, user_stream
from progress.redis_cluster import ClusterUrl
from progress.redis_store import parse_live_message

log = logging.getLogger("api.fanout")

_LINK_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
_LEASE_SLICE = 100
_IDLE_PROBE_SECONDS = 10.0


class Hub:
    """Local connections by user, one pub/sub link, lease refreshing."""

    def __init__(
        self,
        address: RedisAddress | ClusterUrl,
        registry: ConnectionRegistry,
        layout: KeyLayout,
        lease_seconds: float,
        authorizer: Authorizer,
        modes: RealtimeModeStore | None = None,
        backpressure: Backpressure | None = None,
        on_routed: Callable[[EventMeta], None] | None = None,
        linger_seconds: float = 10.0,
    ) -> None:
        self._address = address
        #: A user's channel stays subscribed this long after their last local stream ended:
        #: the reconnects of a deploy, a network blip or a resume storm then skip UNSUBSCRIBE
        #: and SUBSCRIBE (events meanwhile reach nobody here; a reconnect replays them).
        self._linger_seconds = linger_seconds
        self._modes = modes
        self.mode_rule = ModeRule()
        self.backpressure = backpressure
        self._on_routed = on_routed
        self._authorizer = authorizer
        self._control = layout.control()
        self._registry = registry
        self._layout = layout
        self._lease_seconds = lease_seconds
        self._link: PubSubLink | ShardedLink | None = None
        self._by_user: dict[str, set[Connection]] = defaultdict(set)
        self._connections: dict[str, Connection] = {}
        self._waiters: dict[str, list[asyncio.Future[None]]] = defaultdict(list)
        self._subscribed: dict[str, asyncio.Future[None]] = {}
        #: Users without local streams whose channel is still subscribed, with its end.
        self._lingering: dict[str, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._link_up = asyncio.Event()
        self.messages = 0
        self.resyncs = 0

    @property
    def connections(self) -> dict[str, Connection]:
        """Open local streams by connection id."""
        return self._connections

    @property
    def link_up(self) -> bool:
        """True while the pub/sub connection is subscribed."""
        return self._link_up.is_set()

    def subscribed_users(self) -> set[str]:
        """Users with at least one local stream (their channels are subscribed)."""
        return set(self._by_user)

    def mode_of(self, user_id: str) -> str:
        """The realtime mode the current rule gives ``user_id``."""
        return mode_for(user_id, self.mode_rule)

    async def start(self) -> None:
        """Connect the pub/sub link and start its watcher and the lease task."""
        await self._connect()
        await self._load_mode()
        self._tasks = [
            asyncio.create_task(self._read_forever(), name="hub-reader"),
            asyncio.create_task(self._refresh_leases_forever(), name="hub-leases"),
        ]

    async def stop(self) -> None:
        """Tell every stream the server stops, then stop the tasks and the link."""
        for connection in list(self._connections.values()):
            connection.offer(Signal.SHUTDOWN)
        for timer in self._lingering.values():
            timer.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, *_LINK_ERRORS):
                await task
        if self._link is not None:
            self._link.close()

    def broadcast_shutdown(self) -> None:
        """Ask every stream to end with ``server.restart`` (deploys)."""
        for connection in list(self._connections.values()):
            connection.offer(Signal.SHUTDOWN)

    async def _connect(self) -> None:
        if self._link is not None:
            # The old link is dead; closing it returns its socket (they would pile up).
            self._link.close()
            self._link = None
        for user, timer in self._lingering.items():
            timer.cancel()  # a new link subscribes only the users with streams
            self._subscribed.pop(user, None)
        self._lingering.clear()
        link: PubSubLink | ShardedLink
        if isinstance(self._address, ClusterUrl):
            plain = (self._layout.control(),)
            link = await ShardedLink.open(self._address, self._on_replies, plain)
        else:
            link = await PubSubLink.open(self._address, self._on_replies)
        channels = [self._layout.channel(BROADCAST), self._layout.control()]
        channels += [self._layout.channel(user_stream(user)) for user in self._by_user]
        link.subscribe(*channels)
        self._link = link
        self._link_up.set()

    async def _load_mode(self) -> None:
        if self._modes is None:
            return
        try:
            self._apply_mode(await self._modes.get())
        except _LINK_ERRORS as exc:
            log.warning("could not read the realtime mode (%s); keeping %s", exc, self.mode_rule)

    def _apply_mode(self, rule: ModeRule) -> None:
        self.mode_rule = rule
        moved = 0
        for connection in list(self._connections.values()):
            if self.mode_of(connection.principal.user_id) == "polling":
                connection.offer(Signal.POLLING)
                moved += 1
        log.info("realtime mode %s (%d%%): %d streams told to poll", rule.mode, rule.percent, moved)

    async def attach(self, connection: Connection) -> None:
        """Route the user's events to ``connection``; returns once its channel is subscribed."""
        user = connection.principal.user_id
        lingering = self._lingering.pop(user, None)
        if lingering is not None:
            lingering.cancel()
        first = user not in self._by_user and lingering is None
        self._by_user[user].add(connection)
        self._connections[connection.id] = connection
        channel = self._layout.channel(user_stream(user))
        try:
            if first:
                self._subscribed[user] = asyncio.get_running_loop().create_future()
                self._waiters[channel].append(self._subscribed[user])
                if self._link is None or not self.link_up:
                    raise StoreUnavailable("the pub/sub link to Redis is down")
                self._link.subscribe(channel)
            # A second stream of the user also waits until the channel is really subscribed.
            subscribed = self._subscribed[user]
            if not subscribed.done():
                async with asyncio.timeout(5.0):  # lighter than wait_for, which opens pay
                    await asyncio.shield(subscribed)
        except (*_LINK_ERRORS, TimeoutError, KeyError, StoreUnavailable) as exc:
            await self.detach(connection)
            raise StoreUnavailable(f"could not subscribe: {exc}") from exc

    async def detach(self, connection: Connection) -> None:
        """Stop routing to ``connection``; when it was the user's last here, unsubscribe after
        ``linger_seconds`` unless the user attaches again (at once if never confirmed)."""
        self._connections.pop(connection.id, None)
        user = connection.principal.user_id
        local = self._by_user.get(user)
        if local is None:
            return
        local.discard(connection)
        if local:
            return
        del self._by_user[user]
        subscribed = self._subscribed.get(user)
        if subscribed is not None and subscribed.done() and self.link_up:
            loop = asyncio.get_running_loop()
            self._lingering[user] = loop.call_later(self._linger_seconds, self._unsubscribe, user)
            return
        self._unsubscribe(user)

    def _unsubscribe(self, user: str) -> None:
        self._lingering.pop(user, None)
        self._subscribed.pop(user, None)
        if self._link is not None and self.link_up:
            with contextlib.suppress(*_LINK_ERRORS):
                self._link.unsubscribe(self._layout.channel(user_stream(user)))

    async def _read_forever(self) -> None:
        pause = 0.1
        while True:
            try:
                await self._read()
            except _LINK_ERRORS as exc:
                self._link_up.clear()
                log.warning("pub/sub link lost (%s); reconnecting", exc)
            while not self.link_up:
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
                try:
                    await self._connect()
                except _LINK_ERRORS:
                    continue
                pause = 0.1
                # RESYNC before any await: a live event of the new link read meanwhile would be
                # written straight to a parked stream, moving its cursor past the gap its
                # catch-up had to send (after a cluster failover the mode read took seconds).
                self._after_reconnect()
                await self._load_mode()

    def _after_reconnect(self) -> None:
        self.resyncs += 1
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        self._waiters.clear()
        for connection in list(self._connections.values()):
            connection.offer(Signal.RESYNC)
        log.info("pub/sub link back; %d streams catch up", len(self._connections))

    async def _read(self) -> None:
        assert self._link is not None
        # PINGs an idle link: a half-open TCP link would otherwise leave the hub waiting
        # forever while every stream goes quiet.
        await self._link.watch(_IDLE_PROBE_SECONDS)

    def _on_replies(self, replies: Replies) -> None:
        for kind, channel_bytes, data in replies:
            channel = channel_bytes.decode()
            if kind == b"message" and channel == self._control:
                self._on_control(data)
            elif kind == b"message" or kind == b"smessage":
                try:
                    self._route(channel, data)
                except (ValueError, KeyError, TypeError) as exc:
                    log.error(
                        "dropped a malformed message on %s (%s): %r", channel, exc, data[:200]
                    )
            elif kind == b"subscribe" or kind == b"ssubscribe":
                waiters = self._waiters.get(channel)
                if waiters:
                    waiter = waiters.pop(0)
                    if not waiter.done():
                        waiter.set_result(None)
                    if not waiters:
                        del self._waiters[channel]

    def _on_control(self, payload: bytes) -> None:
        try:
            command = orjson.loads(payload)
            if command.get("kind") in ("access-revoked", "access-granted"):
                self._authorizer.forget(command["user_id"], command["novel_id"])
            elif command.get("kind") == "realtime-mode":
                self._apply_mode(ModeRule.model_validate(command["rule"]))
            elif command.get("kind") == "prefs-changed":
                preferences = NotificationPreferences.model_validate(command["preferences"])
                for connection in self._by_user.get(command["user_id"], ()):
                    connection.preferences = preferences
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed control message: %r", payload[:200])

    def _route(self, channel: str, payload: bytes) -> None:
        self.messages += 1
        stream = self._layout.stream_of_channel(channel)
        epoch, stream_id, data = parse_live_message(payload)
        delivery = Delivery(stream, epoch, stream_id, event_meta(data), data)
        if self._on_routed is not None:
            self._on_routed(delivery.meta)
        if self.backpressure is None:
            self.dispatch(delivery)
            return
        for admitted in self.backpressure.admit(delivery):
            self.dispatch(admitted)

    def dispatch(self, delivery: Delivery) -> None:
        """Offer ``delivery`` to every local stream it is for."""
        stream = delivery.stream
        targets: Iterable[Connection]
        if stream == BROADCAST:
            targets = self._connections.values()
        else:
            user = stream[2:]
            targets = self._by_user.get(user, ())
        for connection in list(targets):
            connection.offer(delivery)

    async def _refresh_leases_forever(self) -> None:
        # Spread over the period in small slices: one pipeline of every lease blocked the
        # loop (and Redis) long enough to show in delivery latency at 5,000 streams.
        period = self._lease_seconds / 3
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            leases = [Lease(c.principal.user_id, c.id) for c in self._connections.values()]
            slices = [leases[i : i + _LEASE_SLICE] for i in range(0, len(leases), _LEASE_SLICE)]
            pause = period / (len(slices) + 1)
            for part in slices:
                try:
                    await self._registry.refresh(part)
                except _LINK_ERRORS as exc:
                    log.warning("could not refresh %d leases: %s", len(part), exc)
                await asyncio.sleep(pause)
            await asyncio.sleep(max(0.0, period - (loop.time() - started)))
