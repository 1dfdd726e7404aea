"""Issue 16 item 3: the one outbox core (progress.outbox) against the in-memory journal: journal
first, exactly one row per event, the statuses, failures counted once per batch, the spill and
its drain, the dispatcher and the resend, and the API's async use of it (api.stream.archive)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from typing import Any

import pytest

from api.stream.archive import Archive
from progress.errors import StoreUnavailable
from progress.events import SystemNotification, TaskCompleted, TaskUpdated
from progress.outbox import (
    Outbox,
    OutboxWriter,
    Outgoing,
    Placement,
    SpilledEvent,
    dispatch_pending,
    drain_spill,
    push_records,
    resend,
)
from progress.store import MemoryEventStore, StoredEvent
from progress.testing import JournalDown, MemoryJournal

pytestmark = pytest.mark.unit


class DeadStore:
    def append_many(self, *_: object) -> list[StoredEvent]:
        raise StoreUnavailable("Redis unavailable: refused")

    def close(self) -> None:
        pass


class MemorySpill:
    def __init__(self) -> None:
        self.records: dict[uuid.UUID, SpilledEvent] = {}

    def keep(self, batch: Sequence[Outgoing], placements: Sequence[Placement] = ()) -> None:
        for event, recipients in batch:
            landed = [p for p in placements if p.event_id == event.event_id]
            self.records[event.event_id] = SpilledEvent(event, list(recipients), landed)

    def pending(self, limit: int) -> list[SpilledEvent]:
        return list(self.records.values())[:limit]

    def forget(self, event_ids: Sequence[uuid.UUID]) -> None:
        for event_id in event_ids:
            self.records.pop(event_id, None)


def _done() -> TaskCompleted:
    return TaskCompleted(user_id="u1", task_id="t", duration_seconds=1)


def test_a_pushed_event_has_one_published_row_with_its_placements() -> None:
    journal, store = MemoryJournal(), MemoryEventStore()
    done, update = _done(), TaskUpdated(user_id="u1", task_id="t", percent=5)
    writer = OutboxWriter(store, journal)

    writer.append_many([(update, ()), (done, ["u2"])])
    writer.append_many([(done, ["u2"])])  # a retried batch: recorded once, refused by the store

    assert list(journal.rows) == [done.event_id]
    row = journal.rows[done.event_id]
    assert row.status == "published"
    assert [p.stream for p in row.placements] == ["u:u1", "u:u2"]
    assert len(store.read_after("u:u1", "0-0", 10)) == 2


def test_journal_required_pushes_nothing_when_the_journal_is_down() -> None:
    journal, store = MemoryJournal(), MemoryEventStore()
    journal.down = True
    note = SystemNotification(user_id="u1", level="info", message="hi")

    with pytest.raises(JournalDown):
        OutboxWriter(store, journal, journal_required=True).append(note)

    assert store.read_after("u:u1", "0-0", 10) == []


def test_retries_of_a_failing_push_count_as_one_attempt() -> None:
    journal, done = MemoryJournal(), _done()
    writer = OutboxWriter(DeadStore(), journal)

    for _ in range(3):
        with pytest.raises(StoreUnavailable):
            writer.append(done)

    row = journal.rows[done.event_id]
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.last_error == "StoreUnavailable: Redis unavailable: refused"


def test_an_unjournaled_event_is_spilled_pushed_and_drained_into_one_row() -> None:
    journal, store, spill = MemoryJournal(), MemoryEventStore(), MemorySpill()
    journal.down = True
    done = _done()

    OutboxWriter(store, journal, spill).append_many([(done, ["u2"])])
    assert len(store.read_after("u:u2", "0-0", 10)) == 1
    with pytest.raises(JournalDown):
        drain_spill(spill, journal)
    assert list(spill.records) == [done.event_id]

    journal.down = False
    assert drain_spill(spill, journal) == 1
    spill.keep([(done, ["u2"])])  # a stale copy (a concurrent writer): skipped by the journal
    assert drain_spill(spill, journal) == 1
    assert list(journal.rows) == [done.event_id]
    assert journal.status(done) == "published"


def test_the_dispatcher_pushes_pending_and_failed_rows_with_attempts_left() -> None:
    journal, store = MemoryJournal(), MemoryEventStore()
    crashed, failed, spent = _done(), _done(), _done()
    journal.record([(crashed, ())])  # committed, then the process died before the push
    for event in (failed, spent):
        with pytest.raises(StoreUnavailable):
            OutboxWriter(DeadStore(), journal).append(event)
    journal.rows[spent.event_id].attempts = 5

    assert dispatch_pending(journal, store, grace_seconds=0, max_attempts=5) == 2
    assert dispatch_pending(journal, store, grace_seconds=0, max_attempts=5) == 0
    assert [journal.status(e) for e in (crashed, failed, spent)] == [
        "published",
        "published",
        "failed",
    ]


def test_a_failed_re_push_is_marked_each_time_and_resend_pushes_every_failed_row() -> None:
    journal, done = MemoryJournal(), _done()
    journal.record([(done, ())])
    records = journal.get([1])

    assert push_records(journal, DeadStore(), records) == 0
    assert push_records(journal, DeadStore(), records) == 0
    assert journal.rows[done.event_id].attempts == 2

    assert resend(journal, MemoryEventStore()) == 1
    assert journal.status(done) == "published"
    assert resend(journal, MemoryEventStore()) == 0  # nothing failed any more


class MarkFails(MemoryJournal):
    def mark_published(self, *_: object) -> None:
        raise JournalDown("lost the database after the push")


def test_a_mark_error_is_logged_after_a_first_push_and_raised_after_a_re_push(
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal, store, done = MarkFails(), MemoryEventStore(), _done()
    outbox = Outbox(journal)

    push = outbox.first([(done, ())])
    outbox.pushed(push, store.append_many(push.batch))
    assert "could not record the outcome" in caplog.text
    assert journal.status(done) == "pending"

    again = outbox.again(journal.get([1]))
    with pytest.raises(JournalDown):
        outbox.pushed(again, store.append_many(again.batch))


class AsyncStore:
    def __init__(self, dead: bool = False) -> None:
        self.inner = MemoryEventStore()
        self.dead = dead

    async def append_many(self, batch: Sequence[Outgoing]) -> list[StoredEvent]:
        if self.dead:
            raise StoreUnavailable("Redis unavailable: refused")
        return self.inner.append_many(batch)


def _archive(journal: MemoryJournal, store: AsyncStore) -> Archive:
    # Archive types its audit log as the SQL one; the in-memory journal has the same calls.
    audit: Any = journal
    async_store: Any = store
    return Archive(audit, async_store)


def test_the_api_journals_first_marks_the_outcome_and_resends() -> None:
    journal = MemoryJournal()
    note = SystemNotification(user_id="u1", level="info", message="hi")

    with pytest.raises(StoreUnavailable):
        asyncio.run(_archive(journal, AsyncStore(dead=True)).publish([(note, ())]))
    assert journal.status(note) == "failed"

    store = AsyncStore()
    assert asyncio.run(_archive(journal, store).resend(None)) == 1
    assert journal.status(note) == "published"
    assert asyncio.run(_archive(journal, store).resend([99])) == 0

    journal.down = True
    other = SystemNotification(user_id="u1", level="info", message="again")
    with pytest.raises(JournalDown):
        asyncio.run(_archive(journal, store).publish([(other, ())]))
    assert len(store.inner.read_after("u:u1", "0-0", 10)) == 1  # only the resent one


def test_the_core_logs_why_a_push_failed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "progress.outbox")
    with pytest.raises(StoreUnavailable):
        OutboxWriter(DeadStore(), MemoryJournal()).append(_done())
    assert "push of 1 important events failed" in caplog.text
