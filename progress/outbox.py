"""The outbox: important events are written to a durable journal before they are pushed.

:class:`Outbox` is the one core of it, for every sender: the workers' event writer
(:class:`OutboxWriter`), the dispatcher and the resend (:func:`dispatch_pending`,
:func:`resend`), and the API's system notifications and admin resend (``api.stream.archive``, which
pushes with its async store). The caller pushes; the outbox does the bookkeeping around it:

1. :meth:`Outbox.first` records the batch's important events in the :class:`Journal`
   (durably; idempotent on ``event_id``, so a retried batch is recorded once),
2. the caller pushes the whole batch to its store,
3. :meth:`Outbox.pushed` tells the journal where each important event landed
   (``mark_published``), or :meth:`Outbox.failed` why the push failed (``mark_failed``); the
   caller then re-raises so its retry policy applies.

A journal that cannot record (its database is down) does not stop the push: the event still
goes live, and its journal record is kept in a :class:`Spill` (``progress.journal_spill``: a
Redis hash) together with where it landed; :func:`drain_spill` writes what the spill holds to
the journal once it is reachable again (exactly once: the journal skips ids it has). A sender
that must not push unjournaled (the API's notifications: the caller may simply retry) asks for
``journal_required``: then the journal's error propagates and nothing is pushed. Pushing a
recorded event again (:meth:`Outbox.again`: a dispatcher after a crash, an operator's resend)
is harmless: the store refuses an important event id it already appended.

The journal is a Protocol (:class:`Journal`, :class:`ReadableJournal`); the SQL one is
``progress.audit_log.AuditLog`` (``progress.journal_sql.SqlJournal`` adds group commit), the
in-memory one ``progress.testing.MemoryJournal``. This module knows no database.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
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
    """Durable record of important events and of their push (status ``pending`` when
    recorded, then ``published`` or ``failed``)."""

    def record(self, batch: Sequence[Outgoing]) -> object:
        """Store the events durably (``pending``) before returning; skip event ids already
        recorded. What it returns is not used."""
        ...

    def mark_published(
        self, event_ids: Sequence[uuid.UUID], placements: Sequence[Placement]
    ) -> None:
        """The events were pushed (``published``); ``placements`` says where (refused
        duplicates are absent)."""
        ...

    def mark_failed(self, event_ids: Sequence[uuid.UUID], reason: str) -> None:
        """The push of these events failed with ``reason`` (``failed``, one more attempt)."""
        ...


class JournalRecord(Protocol):
    """An event as the journal holds it: its row id, the event, and its other recipients."""

    @property
    def id(self) -> int: ...

    @property
    def event(self) -> EventEnvelope: ...

    @property
    def recipients(self) -> Sequence[str]: ...


class ReadableJournal(Journal, Protocol):
    """A journal whose records can be read back and pushed again (the SQL audit log)."""

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


@dataclass(frozen=True, slots=True)
class Push:
    """One push the outbox keeps the books of: the batch to push, and its journaled events."""

    batch: Sequence[Outgoing]
    important: list[Outgoing] = field(default_factory=list)
    #: The journal could not record them: their records wait in the spill.
    spilled: bool = False
    #: A re-push of journaled records (dispatcher, resend), not a first push.
    again: bool = False

    @property
    def event_ids(self) -> list[uuid.UUID]:
        """The ids of the journaled events."""
        return [event.event_id for event, _ in self.important]


class Outbox:
    """The journal's side of every push of important events; the caller pushes.

    Synchronous (the journal is): an async caller runs these methods in a worker thread.
    """

    def __init__(
        self, journal: Journal, spill: Spill | None = None, *, journal_required: bool = False
    ) -> None:
        self.journal = journal
        self.spill = spill
        self.journal_required = journal_required
        #: Events whose push failed here and was journaled: the caller's retries of the same
        #: batch (the sender retries for a few seconds) count as one attempt, not one each.
        self._failing: set[uuid.UUID] = set()

    def first(self, batch: Sequence[Outgoing]) -> Push:
        """Journal the important events of ``batch`` before its first push (spill them when
        the journal cannot; raise instead with ``journal_required``)."""
        important = [(event, recipients) for event, recipients in batch if event.important]
        if not important:
            return Push(batch)
        if self.journal_required:
            self.journal.record(important)
            return Push(batch, important)
        return Push(batch, important, spilled=not self._journal(important))

    def again(self, records: Sequence[JournalRecord]) -> Push:
        """A re-push of journaled records (they are all important)."""
        important: list[Outgoing] = [(r.event, r.recipients) for r in records]
        return Push(important, important, again=True)

    def pushed(self, push: Push, stored: Sequence[StoredEvent]) -> None:
        """Record where the pushed events landed (``stored``: the store's answer to the push).

        After a first push a journal error is only logged (the push happened; the
        dispatcher's re-push of such a row is refused by the store as a duplicate); after a
        re-push it propagates to the operator or dispatcher that asked.
        """
        if not push.important:
            return
        ids = push.event_ids
        placements = placements_of(push.batch, stored)
        if push.again:
            self.journal.mark_published(ids, placements)
            return
        self._failing.difference_update(ids)
        if push.spilled:
            self._keep(push.important, placements)
        else:
            self._report(lambda: self.journal.mark_published(ids, placements))

    def failed(self, push: Push, exc: BaseException) -> None:
        """Record that the push failed with ``exc``; the caller re-raises (or gives up)."""
        reason = f"{type(exc).__name__}: {exc}"
        if push.again:
            log.error("re-push of %d important events failed: %s", len(push.important), reason)
            self.journal.mark_failed(push.event_ids, reason)
            return
        fresh = [event_id for event_id in push.event_ids if event_id not in self._failing]
        if not fresh or push.spilled:
            return
        log.error("push of %d important events failed: %s", len(fresh), reason)
        self._report(lambda: self.journal.mark_failed(fresh, reason))
        if len(self._failing) > _MAX_REMEMBERED_FAILURES:
            self._failing.clear()
        self._failing.update(fresh)

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


def push_with(outbox: Outbox, writer: EventWriter, push: Push) -> list[StoredEvent]:
    """Push ``push.batch`` with a synchronous ``writer`` and record the outcome (re-raises)."""
    try:
        stored = writer.append_many(push.batch)
    except Exception as exc:
        outbox.failed(push, exc)
        raise
    outbox.pushed(push, stored)
    return stored


class OutboxWriter:
    """An EventWriter that journals important events before pushing them."""

    def __init__(
        self,
        inner: EventWriter,
        journal: Journal,
        spill: Spill | None = None,
        *,
        journal_required: bool = False,
    ) -> None:
        self.inner = inner
        self.outbox = Outbox(journal, spill, journal_required=journal_required)

    def append(self, event: EventEnvelope, recipients: Sequence[str] = ()) -> list[StoredEvent]:
        """Journal (if important), then store ``event`` in every stream it belongs to."""
        return self.append_many([(event, recipients)])

    def append_many(self, batch: Sequence[Outgoing]) -> list[StoredEvent]:
        """Journal the important events of ``batch``, push the batch, record the outcome."""
        return push_with(self.outbox, self.inner, self.outbox.first(batch))

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
            journal.mark_published(
                [r.event.event_id for r in pushed], [p for r in pushed for p in r.placements]
            )
        spill.forget([r.event.event_id for r in records])
        drained += len(records)
    if drained:
        log.warning("outbox: wrote %d spilled journal records to the journal", drained)
    return drained


def push_records(
    journal: ReadableJournal, writer: EventWriter, records: Sequence[JournalRecord]
) -> int:
    """Push recorded events again and record the outcome; how many were pushed (0 when the
    push failed: the records are marked failed with why)."""
    if not records:
        return 0
    outbox = Outbox(journal)
    push = outbox.again(records)
    try:
        stored = writer.append_many(push.batch)
    except Exception as exc:
        outbox.failed(push, exc)
        return 0
    outbox.pushed(push, stored)
    return len(records)


def dispatch_pending(
    journal: ReadableJournal,
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
            r
            for r in journal.due_for_push(older_than, max_attempts, batch_size)
            if r.id not in seen
        ]
        if not due:
            return pushed
        seen.update(r.id for r in due)
        pushed += push_records(journal, writer, due)


def resend(journal: ReadableJournal, writer: EventWriter, ids: Sequence[int] | None = None) -> int:
    """Push the given rows (every failed row when ``ids`` is None) whatever their status."""
    targets = list(ids) if ids is not None else journal.failed_ids()
    pushed = 0
    for start in range(0, len(targets), 500):
        pushed += push_records(journal, writer, journal.get(targets[start : start + 500]))
    return pushed
