"""The outbox: important events are written to a durable journal before they are pushed.

:class:`OutboxWriter` wraps any :class:`~progress.store.EventWriter`. For every batch it

1. records the batch's important events in the :class:`Journal` (durably; idempotent on
   ``event_id``, so a retried batch is recorded once),
2. pushes the whole batch to the wrapped writer,
3. tells the journal where each important event landed (``published``), or why the push
   failed (``failed``), then re-raises so the caller's retry policy applies.

A journal that cannot record (its database is down) does not stop the push: the event still
goes live, and its journal record is kept in a :class:`Spill` (``progress.journal_spill``: a
Redis hash) together with where it landed; :func:`drain_spill` writes what the spill holds to
the journal once it is reachable again (exactly once: the journal skips ids it has). Pushing a
recorded event again (a dispatcher after a crash) is harmless: the store refuses an important
event id it already appended. The SQL journal lives in ``workers.outbox``; this module knows
no database.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from progress.events import EventEnvelope
from progress.store import EventWriter, StoredEvent, streams_for

log = logging.getLogger("progress.outbox")

Outgoing = tuple[EventEnvelope, Sequence[str]]

_MAX_REMEMBERED_FAILURES = 10_000


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a copy of an important event was stored: its stream and its id there."""

    event_id: uuid.UUID
    stream: str
    id: str


class Journal(Protocol):
    """Durable record of important events and of their push."""

    def record(self, batch: Sequence[Outgoing]) -> None:
        """Store the events durably before returning; skip event ids already recorded."""
        ...

    def published(self, event_ids: Sequence[uuid.UUID], placements: Sequence[Placement]) -> None:
        """The events were pushed; ``placements`` says where (refused duplicates are absent)."""
        ...

    def failed(self, event_ids: Sequence[uuid.UUID], reason: str) -> None:
        """The push of these events failed with ``reason``."""
        ...


@dataclass(frozen=True, slots=True)
class SpilledEvent:
    """A journal record kept aside while the journal was unreachable: the event, its other
    recipients, and where it landed (empty until the push succeeded)."""

    event: EventEnvelope
    recipients: list[str]
    placements: list[Placement]


class Spill(Protocol):
    """Where journal records wait while the journal is unreachable."""

    def keep(self, batch: Sequence[Outgoing], placements: Sequence[Placement] = ()) -> None:
        """Keep a record of each event of ``batch`` (replacing one kept earlier)."""
        ...

    def pending(self, limit: int) -> list[SpilledEvent]:
        """Up to ``limit`` kept records, in no particular order."""
        ...

    def forget(self, event_ids: Sequence[uuid.UUID]) -> None:
        """Drop these records (they are in the journal now)."""
        ...


class JournalRecord(Protocol):
    """An event as the journal holds it: its row id, the event, and its other recipients."""

    @property
    def id(self) -> int: ...

    @property
    def event(self) -> EventEnvelope: ...

    @property
    def recipients(self) -> Sequence[str]: ...


class ReadableJournal(Protocol):
    """A journal whose records can be read back and pushed again (the SQL audit log)."""

    def mark_published(
        self, event_ids: Sequence[uuid.UUID], placements: Sequence[Placement]
    ) -> None:
        """Status ``published`` for ``event_ids``; remember where each copy landed."""
        ...

    def mark_failed(self, event_ids: Sequence[uuid.UUID], reason: str) -> None:
        """Status ``failed``, one more attempt, and why."""
        ...

    def get(self, ids: Iterable[int]) -> Sequence[JournalRecord]:
        """These records (those that exist), oldest first."""
        ...

    def failed_ids(self, limit: int = 10_000) -> list[int]:
        """Ids of failed records, oldest first."""
        ...

    def due_for_push(
        self, older_than: datetime, max_attempts: int, limit: int = 500
    ) -> Sequence[JournalRecord]:
        """Pending records created before ``older_than`` (naive UTC) and failed ones with
        fewer than ``max_attempts`` attempts; oldest first."""
        ...


def placements_of(batch: Sequence[Outgoing], stored: Sequence[StoredEvent]) -> list[Placement]:
    """Where each important event of ``batch`` landed, from the writer's answer (same order)."""
    found: list[Placement] = []
    index = 0
    for event, recipients in batch:
        count = len(streams_for(event, recipients))
        if event.important:
            found += [
                Placement(event.event_id, item.stream, item.id)
                for item in stored[index : index + count]
                if item.id
            ]
        index += count
    return found


class OutboxWriter:
    """An EventWriter that journals important events before pushing them."""

    def __init__(self, inner: EventWriter, journal: Journal, spill: Spill | None = None) -> None:
        self.inner = inner
        self.journal = journal
        self.spill = spill
        #: Events whose push failed here and was journaled: the caller's retries of the same
        #: batch (the sender retries for a few seconds) count as one attempt, not one each.
        self._failing: set[uuid.UUID] = set()

    def append(self, event: EventEnvelope, recipients: Sequence[str] = ()) -> list[StoredEvent]:
        """Journal (if important), then store ``event`` in every stream it belongs to."""
        return self.append_many([(event, recipients)])

    def append_many(self, batch: Sequence[Outgoing]) -> list[StoredEvent]:
        """Journal the important events of ``batch``, push the batch, record the outcome."""
        important = [(event, recipients) for event, recipients in batch if event.important]
        ids = [event.event_id for event, _ in important]
        spilled = bool(important) and not self._journal(important)
        try:
            stored = self.inner.append_many(batch)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            fresh = [event_id for event_id in ids if event_id not in self._failing]
            if fresh and not spilled:
                self._report(lambda: self.journal.failed(fresh, reason))
                if len(self._failing) > _MAX_REMEMBERED_FAILURES:
                    self._failing.clear()
                self._failing.update(fresh)
            raise
        if important:
            self._failing.difference_update(ids)
            placements = placements_of(batch, stored)
            if spilled:
                self._keep(important, placements)
            else:
                self._report(lambda: self.journal.published(ids, placements))
        return stored

    def _journal(self, important: Sequence[Outgoing]) -> bool:
        """Record ``important`` in the journal, else keep it in the spill; False if spilled."""
        try:
            self.journal.record(important)
            return True
        except Exception as exc:
            log.warning(
                "could not journal %d important events (%s); keeping them in the spill",
                len(important),
                type(exc).__name__,
            )
        self._keep(important, ())
        return False

    def _keep(self, important: Sequence[Outgoing], placements: Sequence[Placement]) -> None:
        # Called before the push (not pushed yet) and again after it (where it landed).
        if self.spill is None:
            log.error("no spill: %d important events are pushed unjournaled", len(important))
            return
        try:
            self.spill.keep(important, placements)
        except Exception:
            log.exception("could not spill %d important events either", len(important))

    @staticmethod
    def _report(call: Callable[[], None]) -> None:
        # The push already happened (or failed); a journal error must not undo that.
        try:
            call()
        except Exception:
            log.exception("could not record the outcome of a push in the journal")

    def close(self) -> None:
        """Close the wrapped writer."""
        self.inner.close()


def drain_spill(spill: Spill, journal: Journal, batch_size: int = 500) -> int:
    """Write what ``spill`` holds to ``journal`` (records already there are skipped), mark
    those that were pushed as published, then drop them from the spill; how many.

    A record leaves the spill only after the journal took it, so a failure (the journal is
    still down; a concurrent drain wrote the same rows first) loses nothing: the exception
    propagates and the next drain tries again.
    """
    drained = 0
    while records := spill.pending(batch_size):
        records.sort(key=lambda r: r.event.occurred_at)
        journal.record([(r.event, r.recipients) for r in records])
        pushed = [r for r in records if r.placements]
        if pushed:
            journal.published(
                [r.event.event_id for r in pushed], [p for r in pushed for p in r.placements]
            )
        spill.forget([r.event.event_id for r in records])
        drained += len(records)
    return drained


def push_records(
    audit: ReadableJournal, writer: EventWriter, records: Sequence[JournalRecord]
) -> int:
    """Push recorded events again and record the outcome; how many were pushed."""
    if not records:
        return 0
    batch: list[Outgoing] = [(r.event, r.recipients) for r in records]
    ids = [r.event.event_id for r in records]
    try:
        stored = writer.append_many(batch)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        log.error("re-push of %d important events failed: %s", len(ids), reason)
        audit.mark_failed(ids, reason)
        return 0
    audit.mark_published(ids, placements_of(batch, stored))
    return len(records)


def dispatch_pending(
    audit: ReadableJournal,
    writer: EventWriter,
    grace_seconds: float,
    max_attempts: int,
    batch_size: int = 500,
) -> int:
    """Push every row still pending after ``grace_seconds`` and every failed row with attempts
    left, batch by batch, oldest first; how many were pushed."""
    pushed = 0
    older_than = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=grace_seconds)
    seen: set[int] = set()
    while True:
        due = [
            r for r in audit.due_for_push(older_than, max_attempts, batch_size) if r.id not in seen
        ]
        if not due:
            return pushed
        seen.update(r.id for r in due)
        pushed += push_records(audit, writer, due)


def resend(audit: ReadableJournal, writer: EventWriter, ids: Sequence[int] | None = None) -> int:
    """Push the given rows (every failed row when ``ids`` is None) whatever their status."""
    targets = list(ids) if ids is not None else audit.failed_ids()
    pushed = 0
    for start in range(0, len(targets), 500):
        pushed += push_records(audit, writer, audit.get(targets[start : start + 500]))
    return pushed
