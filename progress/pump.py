"""The one background sender thread of a process.

Tasks never wait on Redis: events go into a bounded in-memory queue that this thread sends in
pipelined batches. Between batches it calls ``on_tick`` (the reporter's hook that releases
throttled updates whose window closed and emits heartbeats) and sleeps until the next deadline
or until woken. While Redis is unreachable it retries a batch for ``retry_seconds``; then it
drops the batch's disposable events (progress updates, heartbeats and stall notices, which later
ones supersede) and puts the others (a task's start, retry and end, content, system events)
back at the head of the queue, to be sent in order once Redis is back. A batch whose events
were stored but whose workflow counting was not (``PartlyStored``) goes on with what is left
(counting markers) on the same path: the events are never stored twice, the counts not lost.
Only a closed sender, a full queue or an error other than an unreachable store drops those
(the SQL outbox closes that gap for important events).

Concurrency: callers append under ``_cond``; the thread takes batches under ``_cond`` and
sends outside it. ``on_tick`` is called without ``_cond`` held (it takes the reporter's lock,
then calls ``submit``), so the lock order is always reporter lock → ``_cond``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from progress.errors import PartlyStored, StoreUnavailable
from progress.events import EventEnvelope
from progress.store import EventWriter

log = logging.getLogger("progress.pump")

Outgoing = tuple[EventEnvelope, Sequence[str]]

_MAX_BATCH = 500

#: Superseded by the task's next update, heartbeat or end: not worth keeping through an outage.
DISPOSABLE_TYPES = frozenset(
    {"task.progress-updated", "task.progress-heartbeat", "task.progress-stalled"}
)


@runtime_checkable
class TimedWriter(Protocol):
    """A writer that holds some output for later (``WorkflowWriter``'s trailing values)."""

    def tick(self) -> float | None:
        """Send what fell due; the clock time to be called again (None: nothing held)."""
        ...


class EventPump:
    """Queues events and sends them from one daemon thread, started on first use."""

    def __init__(
        self,
        writer_factory: Callable[[], EventWriter],
        on_tick: Callable[[], float | None],
        *,
        retry_seconds: float = 5.0,
        max_queued: int = 10_000,
        absorb: Callable[[EventEnvelope, EventEnvelope], bool] | None = None,
    ) -> None:
        self._store_factory = writer_factory
        self._store: EventWriter | None = None
        self._on_tick = on_tick
        self._retry_seconds = retry_seconds
        self._max_queued = max_queued
        #: Folds a new event into the queue's tail (workflow markers), True if it did.
        self._absorb = absorb
        self._queue: deque[Outgoing] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._woken = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.dropped = 0
        #: Events put back in the queue because the store was unreachable (counted each time).
        self.kept = 0
        #: Events stored, by type (read by the workers' metrics).
        self.sent_by_type: Counter[str] = Counter()

    def submit(self, event: EventEnvelope, recipients: Sequence[str] = ()) -> None:
        """Queue ``event`` for sending; drop (and count) it if the queue is full."""
        with self._cond:
            if self._closed:
                self.dropped += 1
                log.error("progress sender closed, dropped %s %s", event.type, event.event_id)
                return
            if self._absorb is not None and self._queue and self._absorb(self._queue[-1][0], event):
                return
            if len(self._queue) >= self._max_queued:
                self.dropped += 1
                log.error("progress queue full, dropped %s %s", event.type, event.event_id)
                return
            self._queue.append((event, recipients))
            self._ensure_thread()
            self._cond.notify_all()

    def wake(self) -> None:
        """Make the thread re-run ``on_tick`` now (a new deadline may be earlier)."""
        with self._cond:
            # Remembered, not only notified: a wake that comes while the thread is between
            # its tick and its wait would otherwise be lost until the old deadline.
            self._woken = True
            self._ensure_thread()
            self._cond.notify_all()

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued so far was sent (or dropped); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None:
                    return False
                self._cond.wait(remaining)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (up to ``timeout``), then stop the thread."""
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._store is not None:
            self._store.close()
            self._store = None

    def _ensure_thread(self) -> None:
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._run, name="progress-pump", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            deadline = self._tick()
            with self._cond:
                if self._closed and not self._queue:
                    return
                if not self._queue:
                    self._cond.notify_all()
                    if self._woken:
                        self._woken = False
                        continue
                    timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                    self._cond.wait(timeout)
                    self._woken = False
                    continue
                batch = [self._queue.popleft() for _ in range(min(_MAX_BATCH, len(self._queue)))]
                self._busy = True
            try:
                self._send(batch)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _tick(self) -> float | None:
        try:
            deadline = self._on_tick()
            store = self._store
            if isinstance(store, TimedWriter) and (held := store.tick()) is not None:
                deadline = held if deadline is None else min(deadline, held)
            return deadline
        except Exception:
            log.exception("progress tick failed")
            return time.monotonic() + 1.0

    def _send(self, batch: list[Outgoing]) -> None:
        give_up_at = time.monotonic() + self._retry_seconds
        pause = 0.05
        failure: StoreUnavailable
        while True:
            try:
                if self._store is None:
                    self._store = self._store_factory()
                self._store.append_many(batch)
                self._count_sent(batch)
                return
            except PartlyStored as exc:  # the events are in; what follows them is retried
                self._count_sent(batch)
                batch, failure = exc.pending, exc
            except StoreUnavailable as exc:
                failure = exc
            except Exception as exc:
                self._give_up(batch, exc)
                return
            if time.monotonic() + pause > give_up_at:
                self._keep_or_give_up(batch, failure)
                return
            time.sleep(pause)
            pause = min(pause * 2, 1.0)

    def _count_sent(self, batch: list[Outgoing]) -> None:
        self.sent += len(batch)
        self.sent_by_type.update(event.type for event, _ in batch)

    def _keep_or_give_up(self, batch: list[Outgoing], exc: Exception) -> None:
        disposable = [item for item in batch if item[0].type in DISPOSABLE_TYPES]
        kept = [item for item in batch if item[0].type not in DISPOSABLE_TYPES]
        with self._cond:
            if not self._closed:
                self._queue.extendleft(reversed(kept))
                self.kept += len(kept)
                kept = []
        if disposable or kept:
            self._give_up(disposable + kept, exc)

    def _give_up(self, batch: list[Outgoing], exc: Exception) -> None:
        self.dropped += len(batch)
        log.error(
            "could not store %d progress events (%s): %s",
            len(batch),
            exc,
            ", ".join(f"{event.type} {event.event_id}" for event, _ in batch[:20]),
        )
