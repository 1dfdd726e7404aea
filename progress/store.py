"""The event store's ports and an in-memory implementation.

``EventWriter`` appends events to the streams of their recipients and publishes them live;
``EventReader`` reads history for resume and the latest task snapshots. ``redis_store`` holds the
Redis implementations (sync for workers, asyncio for the API); ``MemoryEventStore`` is a real,
single-process implementation used by unit tests and run through the same contract tests.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from progress.cursor import ZERO_ID, StreamState, id_after
from progress.events import EventEnvelope, encode_event
from progress.keys import BROADCAST, user_stream
from progress.snapshot import TaskSnapshot, snapshot_fields


class StoreSettings(BaseSettings):
    """Where the store keeps events and how much, from ``PROGRESS_*``; build one in code for
    tests. The one model of these settings: the workers' ``ProgressSettings`` and the API's
    ``ApiSettings`` extend it, so both processes read the same variables and a setting added
    here reaches both stores."""

    # Each field names its variable, so the API's env_prefix (SSE_) does not move it.
    model_config = SettingsConfigDict(env_prefix="PROGRESS_", extra="forbid", populate_by_name=True)

    #: Starts every Redis key and channel name (``progress.keys.KeyLayout``).
    key_prefix: str = Field(default="rt", validation_alias=AliasChoices("PROGRESS_KEY_PREFIX"))
    retention_seconds: float = Field(
        default=24 * 3600, gt=0, validation_alias=AliasChoices("PROGRESS_RETENTION_SECONDS")
    )
    max_stream_length: int = Field(
        default=10_000, ge=10, validation_alias=AliasChoices("PROGRESS_MAX_STREAM_LENGTH")
    )
    #: Streams the Redis store appends to in one script call; forced to 1 on Redis Cluster,
    #: where one call must touch one user's keys only.
    streams_per_call: int = Field(
        default=64, ge=1, validation_alias=AliasChoices("PROGRESS_STREAMS_PER_CALL")
    )

    def store_settings(self) -> StoreSettings:
        """Only the store's settings (of ``ProgressSettings`` or ``ApiSettings``: their store
        part, every field of this class)."""
        return StoreSettings(**{name: getattr(self, name) for name in StoreSettings.model_fields})


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as stored: its stream, the stream's epoch, its id there, and its JSON.

    ``id`` is ``""`` when the store refused an important event it had already appended (an
    outbox re-push): that copy was neither stored again nor published.
    """

    stream: str
    epoch: str
    id: str
    data: bytes


def streams_for(event: EventEnvelope, recipients: Sequence[str] = ()) -> list[str]:
    """The streams an event is written to: broadcast, or each recipient's (owner first)."""
    if event.audience == "broadcast":
        return [BROADCAST]
    users = [event.user_id, *recipients] if event.user_id else list(recipients)
    return [user_stream(user) for user in dict.fromkeys(users)]


def new_epoch() -> str:
    """A random epoch candidate; the store keeps the first one written for a stream."""
    return secrets.token_hex(4)


class EventWriter(Protocol):
    """Appends events to streams and publishes them to live subscribers."""

    def append(self, event: EventEnvelope, recipients: Sequence[str] = ()) -> list[StoredEvent]:
        """Store ``event`` in every stream it belongs to; return where it was stored."""
        ...

    def append_many(
        self, batch: Sequence[tuple[EventEnvelope, Sequence[str]]]
    ) -> list[StoredEvent]:
        """Store several events in one round trip, in order."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class EventReader(Protocol):
    """Reads stream history and task snapshots."""

    def read_after(self, stream: str, after_id: str, limit: int) -> list[StoredEvent]:
        """Up to ``limit`` events of ``stream`` with ids after ``after_id``, oldest first."""
        ...

    def stream_state(self, stream: str) -> StreamState:
        """The stream's epoch (created if new), last id and trim mark."""
        ...

    def task_snapshot(self, user_id: str, task_id: str) -> TaskSnapshot | None:
        """The latest snapshot of ``user_id``'s task, or None if the user has no such task."""
        ...

    def recent_tasks(self, user_id: str, limit: int = 50) -> list[TaskSnapshot]:
        """The user's most recently updated tasks, newest first."""
        ...


@dataclass
class _MemoryStream:
    epoch: str
    entries: list[tuple[str, bytes, float]] = field(default_factory=list)
    trimmed_before: str | None = None
    last_id: str = ZERO_ID
    seen: set[str] = field(default_factory=set)


class MemoryEventStore:
    """EventWriter and EventReader in process memory; ``listeners`` get every stored event."""

    def __init__(
        self, settings: StoreSettings | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings or StoreSettings()
        self.listeners: list[Callable[[StoredEvent], None]] = []
        self._clock = clock
        self._streams: dict[str, _MemoryStream] = {}
        self._tasks: dict[tuple[str, str], dict[str, str]] = {}
        self._lock = threading.Lock()

    def append(self, event: EventEnvelope, recipients: Sequence[str] = ()) -> list[StoredEvent]:
        """Store ``event`` in every stream it belongs to; return where it was stored."""
        return self.append_many([(event, recipients)])

    def append_many(
        self, batch: Sequence[tuple[EventEnvelope, Sequence[str]]]
    ) -> list[StoredEvent]:
        """Store several events, in order."""
        stored: list[StoredEvent] = []
        with self._lock:
            for event, recipients in batch:
                data = encode_event(event)
                dedupe_id = str(event.event_id) if event.important else None
                for stream in streams_for(event, recipients):
                    stored.append(self._append_one(stream, data, dedupe_id))
                self._update_snapshot(event)
        for item in (item for item in stored if item.id):
            for listener in self.listeners:
                listener(item)
        return stored

    def _append_one(self, stream_name: str, data: bytes, dedupe_id: str | None) -> StoredEvent:
        stream = self._stream(stream_name)
        if dedupe_id is not None:
            if dedupe_id in stream.seen:
                return StoredEvent(stream_name, stream.epoch, "", data)
            stream.seen.add(dedupe_id)
        now = self._clock()
        ms = int(now * 1000)
        last_ms, last_seq = (int(part) for part in stream.last_id.split("-"))
        new_id = f"{last_ms}-{last_seq + 1}" if ms <= last_ms else f"{ms}-0"
        stream.entries.append((new_id, data, now))
        stream.last_id = new_id
        self._trim(stream, now)
        return StoredEvent(stream_name, stream.epoch, new_id, data)

    def _trim(self, stream: _MemoryStream, now: float) -> None:
        horizon = now - self.settings.retention_seconds
        keep = [e for e in stream.entries if e[2] >= horizon][-self.settings.max_stream_length :]
        if len(keep) < len(stream.entries):
            stream.entries = keep
            stream.trimmed_before = keep[0][0] if keep else stream.last_id

    def _stream(self, name: str) -> _MemoryStream:
        return self._streams.setdefault(name, _MemoryStream(epoch=new_epoch()))

    def _update_snapshot(self, event: EventEnvelope) -> None:
        fields = snapshot_fields(event)
        if fields is not None:
            self._tasks.setdefault((fields["user_id"], fields["task_id"]), {}).update(fields)

    def read_after(self, stream: str, after_id: str, limit: int) -> list[StoredEvent]:
        """Up to ``limit`` events of ``stream`` with ids after ``after_id``, oldest first."""
        with self._lock:
            state = self._stream(stream)
            newer = [e for e in state.entries if id_after(e[0], after_id)][:limit]
            return [StoredEvent(stream, state.epoch, id_, data) for id_, data, _ in newer]

    def stream_state(self, stream: str) -> StreamState:
        """The stream's epoch (created if new), last id and trim mark."""
        with self._lock:
            state = self._stream(stream)
            return StreamState(state.epoch, state.last_id, state.trimmed_before)

    def task_snapshot(self, user_id: str, task_id: str) -> TaskSnapshot | None:
        """The latest snapshot of ``user_id``'s task, or None if the user has no such task."""
        fields = self._tasks.get((user_id, task_id))
        return TaskSnapshot.from_hash(fields) if fields else None

    def recent_tasks(self, user_id: str, limit: int = 50) -> list[TaskSnapshot]:
        """The user's most recently updated tasks, newest first."""
        mine = [TaskSnapshot.from_hash(f) for (u, _), f in self._tasks.items() if u == user_id]
        return sorted(mine, key=lambda snap: snap.updated_at, reverse=True)[:limit]

    def close(self) -> None:
        """Nothing to release."""

    def forget_everything(self) -> None:
        """Lose all history, as a Redis flush would: epochs change."""
        with self._lock:
            self._streams.clear()
            self._tasks.clear()
