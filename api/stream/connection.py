"""One open SSE stream: its bounded queue of live events and the frames it writes.

The hub (``api.hub.hub``) calls :meth:`Connection.offer` from its one reader task. While the
stream's task is parked with nothing queued, and the event can be decided without I/O, ``offer``
writes its frame at once through the server's ASGI ``send`` (``api.stream.response.DirectWriter``):
no queue, no task wake-up, no trip through the middleware's send wrappers. Otherwise the event
is queued and the stream's own generator (:meth:`Connection.frames`) writes it. A full queue
first loses superseded progress updates of the same task (the newest stays); if still full,
the connection is closed with a ``reconnect`` hint and the client resumes from its cursor,
losing nothing.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence, Set
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Protocol

import orjson

from api.auth.authz import Authorizer
from api.auth.tokens import Principal
from api.event_meta import EventMeta, event_meta
from api.preferences import DEFAULT_PREFERENCES, NotificationPreferences
from api.stream.archive import Archive
from api.stream.delivery import (
    CHECK,
    DUPLICATE,
    NO_IDS,
    PACE,
    PROGRESS_UPDATE,
    RESET,
    SEND,
    SKIP,
    Delivery,
    Verdict,
    decide,
)
from api.stream.replay_frames import CursorText, MetaCache
from api.stream.response import DirectWriter, current_writer
from progress.cursor import (
    ZERO_ID,
    Cursor,
    Resume,
    StreamPosition,
    decide_resume,
    id_after,
    parse_stream_id,
)
from progress.errors import StoreUnavailable
from progress.events import TERMINAL_TASK_TYPES
from progress.keys import BROADCAST, user_stream
from progress.redis_store import AsyncRedisEventStore
from progress.store import StoredEvent


class Signal(Enum):
    """Control items the hub puts into a connection's queue."""

    RESYNC = "resync"  # the pub/sub link came back: catch up from the cursor
    SHUTDOWN = "shutdown"  # the server is stopping
    POLLING = "polling"  # operators moved this user to polling: end with realtime.mode


#: Replayed events' routing fields, parsed once per process (a resume storm replays the same
#: broadcast events to every stream).
_replay_meta = MetaCache(event_meta)


def merge_by_stream_id(
    archived: list[tuple[str | None, bytes]], stored: list[StoredEvent]
) -> list[bytes | StoredEvent]:
    """Archived events (JSON) and stored ones in stream-id order (ids are times, so they
    compare across epochs); archived events never pushed (no id) last; on a tie the archived
    copy first. An archived event the stored ones also hold is left out: a push retried after
    the store lost its data stored it again before the journal recorded where, and the
    stored copy has its place in the history and a cursor."""
    in_store = {event_meta(item.data).event_id for item in stored} if archived else set()
    never = (float("inf"), float("inf"))
    keyed: list[tuple[tuple[float, float], int, bytes | StoredEvent]] = [
        (parse_stream_id(id_) if id_ else never, 0, data)
        for id_, data in archived
        if event_meta(data).event_id not in in_store
    ]
    keyed += [(parse_stream_id(item.id), 1, item) for item in stored]
    keyed.sort(key=lambda entry: (entry[0], entry[1]))
    return [item for _, _, item in keyed]


def frame(event: str, data: bytes, cursor: str | None = None, retry_ms: int | None = None) -> bytes:
    """One SSE message."""
    parts = []
    if retry_ms is not None:
        parts.append(b"retry: %d\n" % retry_ms)
    if cursor is not None:
        parts.append(b"id: " + cursor.encode() + b"\n")
    parts.append(b"event: " + event.encode() + b"\ndata: " + data + b"\n\n")
    return b"".join(parts)


class UpdatePacer:
    """At most one ``task.progress-updated`` per task per ``interval`` seconds on one stream.

    Clients on slow or metered links ask for this (``progress_interval_ms``). The newest held
    update of a task replaces the older one and goes out when its interval ends, or just
    before any other event of the same task, so a task's events keep their order and its
    terminal event is never held back.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._sent_at: dict[str, float] = {}
        self._held: dict[str, Delivery] = {}

    @staticmethod
    def _key(item: Delivery) -> str:
        return f"{item.stream}/{item.meta.task_id}"

    def admit(self, item: Delivery, now: float) -> bool:
        """True when the update may go out now; otherwise it is held."""
        if self.interval <= 0:
            return True
        key = self._key(item)
        if key not in self._held and now - self._sent_at.get(key, -self.interval) >= self.interval:
            self._sent_at[key] = now
            return True
        self._held[key] = item
        return False

    def take(self, item: Delivery) -> Delivery | None:
        """The held update of ``item``'s task, to send before ``item``; forgets the task when
        ``item`` ends it."""
        if self.interval <= 0:
            return None  # nothing is ever held
        key = self._key(item)
        held = self._held.pop(key, None)
        if item.meta.type in TERMINAL_TASK_TYPES:
            self._sent_at.pop(key, None)
        return held

    @property
    def holding(self) -> bool:
        """True while some update is held."""
        return bool(self._held)

    def wait(self, now: float) -> float:
        """Seconds until the next held update is due (infinity when none is held)."""
        if not self._held:
            return float("inf")
        return max(0.0, min(self._sent_at[k] + self.interval for k in self._held) - now)

    def due(self, now: float) -> list[Delivery]:
        """Held updates whose interval ended, in the order they were held."""
        # A timer may wake a hair early; a millisecond of slack keeps it from spinning.
        ready = [k for k in self._held if now - self._sent_at[k] >= self.interval - 0.001]
        for key in ready:
            self._sent_at[key] = now
        return [self._held.pop(key) for key in ready]


#: The pacer of every stream that asked for no pacing: it never holds anything, so one serves all.
_UNPACED = UpdatePacer(0.0)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _now() -> str:
    return datetime.now(UTC).isoformat()


class StreamObserver(Protocol):
    """Told what a stream did (metrics); every call is cheap and never raises."""

    def delivered(self, meta: EventMeta) -> None:
        """A live event was written to the client."""

    def replayed(self, events: int, reset: bool) -> None:
        """A catch-up from history sent ``events`` (``reset``: some history was lost)."""

    def coalesced(self, where: str, count: int = 1) -> None:
        """``count`` superseded progress updates were dropped from the queue."""


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """Per-process stream settings."""

    heartbeat_seconds: float
    retry_ms: int
    queue_size: int
    max_replay: int
    expiry_notice_seconds: float
    instance_id: str


class Connection:
    """One client's stream."""

    def __init__(
        self,
        connection_id: str,
        principal: Principal,
        cursor: Cursor | None,
        store: AsyncRedisEventStore,
        authorizer: Authorizer,
        options: StreamOptions,
        progress_interval: float = 0.0,
        observer: StreamObserver | None = None,
        archive: Archive | None = None,
    ) -> None:
        self.id = connection_id
        self.principal = principal
        self.user_stream = user_stream(principal.user_id)
        self.streams = (self.user_stream, BROADCAST)
        self.cursor = Cursor(
            {s: p for s, p in (cursor.positions.items() if cursor else ()) if s in self.streams}
        )
        self._resume_from = cursor
        self._store = store
        self._authorizer = authorizer
        self._options = options
        self._archive = archive
        #: Ids of events replayed from the SQL archive: not sent again from Redis or live.
        self._from_archive: set[str] = set()
        self._queue: deque[Delivery | Signal] = deque()
        #: Resolved to wake the stream's task while it is parked (with a timer for beats).
        self._waiter: asyncio.Future[None] | None = None
        #: Set once the response head went out, when the server allows direct writes.
        self._direct: DirectWriter | None = None
        #: True while the stream's task waits for work (no send of this stream is under way).
        self._parked = False
        self._last_sent = time.time()
        self._notice_at = principal.expires_at - options.expiry_notice_seconds
        self._overflowed = False
        self._prepared: list[bytes] = []
        self._paced = progress_interval > 0
        self._updates = UpdatePacer(progress_interval) if self._paced else _UNPACED
        self.delivered = 0
        self.connected_at = time.monotonic()
        self.observer = observer
        self.preferences: NotificationPreferences = DEFAULT_PREFERENCES
        #: Why the stream ended; stays ``client_gone`` when the client went away first.
        self.close_reason = "client_gone"

    def offer(self, item: Delivery | Signal) -> None:
        """Queue a live event or a control signal (called by the hub).

        On overflow the queue is dropped whole and the stream closes with ``reconnect``: its
        cursor still points at the last event written, so the client's resume loses nothing.
        """
        if self._overflowed:
            return
        if self._parked and not self._queue and isinstance(item, Delivery):
            if self._deliver_now(item):
                return
        if isinstance(item, Delivery) and len(self._queue) >= self._options.queue_size:
            self._coalesce()
            if len(self._queue) >= self._options.queue_size:
                self._overflowed = True
                self._queue.clear()
                self._wake()
                return
        self._queue.append(item)
        self._wake()

    @property
    def queue_depth(self) -> int:
        """Items waiting to be written."""
        return len(self._queue)

    def _coalesce(self) -> None:
        newest: set[str] = set()
        before = len(self._queue)
        kept: deque[Delivery | Signal] = deque()
        for item in reversed(self._queue):
            if isinstance(item, Delivery) and item.meta.type == PROGRESS_UPDATE:
                key = f"{item.stream}/{item.meta.task_id}"
                if key in newest:
                    continue
                newest.add(key)
            kept.appendleft(item)
        self._queue = kept
        if self.observer is not None and before > len(kept):
            self.observer.coalesced("queue", before - len(kept))

    def _wake(self) -> None:
        if self._waiter is not None:
            _resolve(self._waiter)

    async def _park(self, timeout: float) -> None:
        """Wait until woken or ``timeout`` seconds passed; direct writes happen meanwhile."""
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        # A bare timer and future: an asyncio.Event plus asyncio.timeout cost about 1 KiB
        # more per idle stream.
        timer = loop.call_later(timeout, _resolve, waiter)
        self._parked = True
        try:
            await waiter
        finally:
            self._parked = False
            self._waiter = None
            timer.cancel()

    def _deliver_now(self, item: Delivery) -> bool:
        """Write ``item`` from the hub's call; False when the stream's task must handle it
        (an access check needing I/O, a lost history, the expiry notice due, a busy socket)."""
        writer = self._direct
        if writer is None or not writer.writable:
            return False
        now = time.time()
        if now >= self._notice_at:
            return False
        verdict = self._live_verdict(
            item, self._authorizer.known(self.principal.user_id, item.meta)
        )
        if verdict is CHECK or verdict is RESET:
            return False
        if verdict is SKIP:
            self.cursor = self.cursor.advance(item.stream, item.epoch, item.id)
            return True
        if verdict is DUPLICATE:
            return True
        had_held = self._updates.holding
        frames = self._frames_of(item, verdict, now)
        if frames:
            writer.write(b"".join(data for data, _ in frames))
            self._last_sent = now
            self._observe(frames)
        if self._updates.holding and not had_held:
            self._wake()  # the task's timer must now also cover the held update
        return True

    def _live_verdict(self, item: Delivery, access: bool | None) -> Verdict:
        """What to do with live ``item`` (``access``: the authorizer's answer, None if unknown)."""
        return decide(
            item.meta,
            self.principal.session_id,
            access,
            self.preferences,
            self._from_archive,
            self._paced,
            self.cursor.positions.get(item.stream),
            item.epoch,
            item.id,
        )

    async def _stored_verdict(self, meta: EventMeta, sent_from_archive: Set[str]) -> Verdict:
        """What to do with an event of a catch-up: read after the cursor, so never compared
        with it, and never paced; asks the authorizer when its answer needs I/O."""
        user_id, session_id = self.principal.user_id, self.principal.session_id
        access = self._authorizer.known(user_id, meta)
        verdict = decide(meta, session_id, access, self.preferences, sent_from_archive)
        if verdict is CHECK:
            access = await self._authorizer.may_receive(user_id, meta)
            verdict = decide(meta, session_id, access, self.preferences, sent_from_archive)
        return verdict

    def _event_frame(self, item: StoredEvent | Delivery, meta: EventMeta) -> bytes:
        self.cursor = self.cursor.advance(item.stream, item.epoch, item.id)
        self.delivered += 1
        return frame(meta.type, item.data, self.cursor.format())

    async def prepare(self) -> None:
        """Read the gap to replay (or decide to reset) before the response starts.

        Call after the hub subscribed this connection, so nothing falls between this history
        read and the live events queued meanwhile (those already replayed are dropped by id).
        Raises StoreUnavailable, which the route turns into a 503.
        """
        self._prepared = await self._catch_up(self._resume_from)

    async def frames(self) -> AsyncIterator[bytes]:
        """The stream: established, the resumed gap (or a reset), then live events and beats."""
        established = {
            "connection_id": self.id,
            "server_time": _now(),
            "instance_id": self._options.instance_id,
            "heartbeat_seconds": self._options.heartbeat_seconds,
        }
        # A resumed client keeps its own cursor until the replayed events move it.
        cursor = self.cursor.format() if self._resume_from is None else None
        yield frame(
            "connection.established",
            orjson.dumps(established),
            cursor,
            retry_ms=self._options.retry_ms,
        )
        if self._prepared:  # one write for the whole gap, not one per replayed event
            yield b"".join(self._prepared)
        self._prepared = []
        try:
            async for chunk in self._live():
                yield chunk
        except StoreUnavailable:
            self.close_reason = "store_unavailable"
            yield self._closing_frame("reconnect", "store_unavailable", self._options.retry_ms)

    async def _catch_up(self, resume_from: Cursor | None) -> list[bytes]:
        """Frames that bring the client from ``resume_from`` to now, for every followed stream.

        A stream whose gap is intact is replayed after the cursor. A stream whose history was
        lost (epoch changed, trimmed past the cursor) gets a ``stream.reset`` first, then its
        important events after the cursor from the SQL archive, then everything its current
        history holds after the loss (events already sent from the archive are skipped). A gap
        longer than ``max_replay`` is not replayed: the client is told to reset instead.
        """
        resets: list[str] = []
        archived: list[tuple[str | None, bytes]] = []
        plans: list[tuple[str, str, str, str]] = []
        for stream in self.streams:
            state = await self._store.stream_state(stream)
            position = resume_from.positions.get(stream) if resume_from else None
            decision = decide_resume(position, state)
            start = state.last_id
            if decision is Resume.REPLAY and position is not None:
                start = position.last_id
            elif decision is Resume.RESET:
                resets.append(stream)
                start = ZERO_ID
                found = await self._replay_archive(stream, position)
                if found is not None and position is not None:
                    archived += found
                    if position.epoch == state.epoch:  # trimmed: Redis has what followed
                        after = id_after(state.last_id, position.last_id)
                        start = position.last_id if after else state.last_id
            self.cursor = self.cursor.advance(stream, state.epoch, start)
            if start != state.last_id:
                plans.append((stream, state.epoch, start, state.last_id))
        gaps: list[list[StoredEvent]] = []
        too_long: list[str] = []
        for stream, epoch, start, last_id in plans:
            entries = await self._read_gap(stream, start, last_id)
            if entries is None:
                self.cursor = self.cursor.advance(stream, epoch, last_id)
                too_long.append(stream)
            else:
                gaps.append(entries)
        # "history_unavailable": events were lost; "gap_too_long": they exist, but too many.
        reason = "history_unavailable" if resets else "gap_too_long"
        resets += [stream for stream in too_long if stream not in resets]
        if self.observer is not None and (gaps or resets):
            self.observer.replayed(sum(len(entries) for entries in gaps), bool(resets))
        stored = [item for entries in gaps for item in entries]
        merged: Sequence[bytes | StoredEvent]
        if archived:
            merged = merge_by_stream_id(archived, stored)
        elif sum(1 for entries in gaps if entries) > 1:
            stored.sort(key=lambda item: parse_stream_id(item.id))
            merged = stored
        else:
            merged = stored  # one stream's gap is in order already
        # Archived events carry no cursor: a client cut off among them resumes from its older
        # cursor and gets the archive again (clients deduplicate by ``event_id``). The last
        # frame sent carries it, whatever it is: the reset itself when nothing follows it.
        # Without an archive the reset carries the cursor from before the replay (the replayed
        # frames that follow it carry their own).
        before_replay = self.cursor.format()
        pieces: list[bytes | tuple[str, bytes]] = []
        run: list[StoredEvent] = []
        for item in merged:
            if isinstance(item, bytes):
                pieces += await self._replay(run)
                run = []
                archived_frame = await self._archived(item)
                if archived_frame is not None:
                    pieces.append(archived_frame)
            else:
                run.append(item)
        pieces += await self._replay(run)
        chunks = []
        if resets:
            if not archived:
                cursor: str | None = before_replay
            else:
                cursor = None if pieces else self.cursor.format()
            chunks.append(await self._reset_frame(resets, reason, cursor))
        last = len(pieces) - 1
        for index, piece in enumerate(pieces):
            if isinstance(piece, bytes):
                chunks.append(piece)
            else:
                chunks.append(frame(*piece, self.cursor.format() if index == last else None))
        return chunks

    async def _replay(self, items: list[StoredEvent]) -> list[bytes]:
        """The frames of stored events the client may see; the cursor moves past them all."""
        chunks = []
        text = CursorText(self.cursor)
        for item in items:
            text.advance(item.stream, item.epoch, item.id)
            meta = _replay_meta(item.data)
            if await self._stored_verdict(meta, self._from_archive) is SEND:
                self.delivered += 1
                chunks.append(frame(meta.type, item.data, text.text()))
        self.cursor = text.cursor
        return chunks

    async def _replay_archive(
        self, stream: str, position: StreamPosition | None
    ) -> list[tuple[str | None, bytes]] | None:
        """Important events of ``stream`` after ``position`` from SQL; None without archive."""
        if self._archive is None or position is None:
            return None
        return await self._archive.replay(stream, position.last_id, self._options.max_replay)

    async def _archived(self, data: bytes) -> tuple[str, bytes] | None:
        """The type and body of an archived event the client may see, else None."""
        meta = event_meta(data)
        if await self._stored_verdict(meta, NO_IDS) is not SEND:
            return None
        self._from_archive.add(meta.event_id)
        self.delivered += 1
        return meta.type, data

    async def _read_gap(self, stream: str, after: str, last_id: str) -> list[StoredEvent] | None:
        entries: list[StoredEvent] = []
        while id_after(last_id, after):
            page = await self._store.read_after(stream, after, 500)
            if not page:
                break
            entries += page
            if len(entries) > self._options.max_replay:
                return None
            after = page[-1].id
        return entries

    async def _reset_frame(self, streams: list[str], reason: str, cursor: str | None) -> bytes:
        tasks = await self._store.recent_tasks(self.principal.user_id)
        body = {
            "reason": reason,
            "streams": streams,
            "server_time": _now(),
            "tasks": [t.model_dump(mode="json") for t in tasks],
        }
        return frame("stream.reset", orjson.dumps(body), cursor)

    async def _live(self) -> AsyncIterator[bytes]:
        beat_every = self._options.heartbeat_seconds
        notice_at = self._notice_at
        self._direct = current_writer.get()
        while True:
            if not self._queue and not self._overflowed:
                now = time.time()
                timeout = min(
                    self._last_sent + beat_every - now, notice_at - now, self._updates.wait(now)
                )
                await self._park(max(0.0, timeout))
            now = time.time()
            if now >= notice_at:
                self.close_reason = "token_expiring"
                yield self._expiring_frame()
                return
            if not self._queue and not self._overflowed:
                # A timer or a wake-up with nothing queued: held updates that are due, and a
                # heartbeat after ``beat_every`` of silence (direct writes count as sound).
                due = [(self._held_frame(held), held.meta) for held in self._updates.due(now)]
                if due:
                    yield b"".join(data for data, _ in due)
                    self._observe(due)
                elif now - self._last_sent >= beat_every - 0.001:
                    yield frame("heartbeat", orjson.dumps({"server_time": _now()}))
                else:
                    continue
                self._last_sent = time.time()
                continue
            while self._queue or self._overflowed:
                if self._overflowed:
                    self.close_reason = "slow_client"
                    yield self._closing_frame("reconnect", "slow_client", self._options.retry_ms)
                    return
                item = self._queue.popleft()
                if item is Signal.SHUTDOWN:
                    retry = random.randint(self._options.retry_ms, self._options.retry_ms * 4)
                    self.close_reason = "shutdown"
                    yield self._closing_frame("server.restart", "shutdown", retry)
                    return
                if item is Signal.POLLING:
                    self.close_reason = "realtime_polling"
                    yield self._polling_frame()
                    return
                if item is Signal.RESYNC:
                    for chunk in await self._catch_up(self.cursor):
                        yield chunk
                    continue
                assert isinstance(item, Delivery)
                async for chunk in self._deliver(item):
                    yield chunk
                if time.time() >= notice_at:
                    break
            self._last_sent = time.time()

    async def _deliver(self, item: Delivery) -> AsyncIterator[bytes]:
        user_id = self.principal.user_id
        verdict = self._live_verdict(item, self._authorizer.known(user_id, item.meta))
        if verdict is CHECK:
            allowed = await self._authorizer.may_receive(user_id, item.meta)
            verdict = self._live_verdict(item, allowed)
        if verdict is DUPLICATE:
            return
        if verdict is RESET:
            # The store lost this stream's history (flush, failover): catching up sends
            # stream.reset, then the new history from its start.
            for chunk in await self._catch_up(self.cursor):
                yield chunk
            return
        if verdict is SKIP:
            self.cursor = self.cursor.advance(item.stream, item.epoch, item.id)
            return
        frames = self._frames_of(item, verdict, time.time())
        if frames:
            yield b"".join(data for data, _ in frames)
            self._observe(frames)

    def _frames_of(
        self, item: Delivery, verdict: Verdict, now: float
    ) -> list[tuple[bytes, EventMeta]]:
        """The frames of a live event to send or pace: none while the pacer holds it; the
        task's held update first when one is waiting."""
        if verdict is PACE:
            if not self._updates.admit(item, now):
                return []
            return [(self._event_frame(item, item.meta), item.meta)]
        held = self._updates.take(item)
        frames = [] if held is None else [(self._held_frame(held), held.meta)]
        frames.append((self._event_frame(item, item.meta), item.meta))
        return frames

    def _observe(self, frames: list[tuple[bytes, EventMeta]]) -> None:
        if self.observer is not None:
            for _, meta in frames:
                self.observer.delivered(meta)

    def _held_frame(self, item: Delivery) -> bytes:
        """A progress update held back by the pacer; no ``id:`` once later events moved the
        cursor past it, so the client's resume point never goes backwards."""
        self.delivered += 1
        position = self.cursor.positions.get(item.stream)
        if (
            position is not None
            and position.epoch == item.epoch
            and id_after(position.last_id, item.id)
        ):
            return frame(item.meta.type, item.data)
        self.cursor = self.cursor.advance(item.stream, item.epoch, item.id)
        return frame(item.meta.type, item.data, self.cursor.format())

    def _polling_frame(self) -> bytes:
        body = orjson.dumps({"mode": "polling", "reason": "realtime_mode", "server_time": _now()})
        return frame("realtime.mode", body, self.cursor.format())

    def _closing_frame(self, event: str, reason: str, retry_ms: int) -> bytes:
        body = orjson.dumps({"reason": reason, "retry_ms": retry_ms, "server_time": _now()})
        return frame(event, body, self.cursor.format(), retry_ms=retry_ms)

    def _expiring_frame(self) -> bytes:
        expires = datetime.fromtimestamp(self.principal.expires_at, UTC).isoformat()
        body = orjson.dumps({"expires_at": expires, "reason": "token_expiring"})
        return frame("auth.expiring", body, self.cursor.format(), retry_ms=self._options.retry_ms)
