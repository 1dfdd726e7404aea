"""Issue 6: the outbox writer journals important events before the push, and records why a
push failed; pure, on the in-memory store."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest

from progress.errors import StoreUnavailable
from progress.events import TaskCompleted, TaskUpdated
from progress.outbox import OutboxWriter, Outgoing, Placement, SpilledEvent, drain_spill
from progress.store import MemoryEventStore, StoredEvent

pytestmark = pytest.mark.unit


class RecordingJournal:
    """A journal that remembers every call, and what the store held at record time."""

    def __init__(self, store: MemoryEventStore, broken: bool = False) -> None:
        self.store = store
        self.broken = broken
        self.calls: list[tuple[str, object]] = []

    def record(self, batch: Sequence[Outgoing]) -> None:
        if self.broken:
            raise OSError("database down")
        stored_before = len(self.store.read_after("u:u1", "0-0", 100))
        self.calls.append(("record", ([e.event_id for e, _ in batch], stored_before)))

    def mark_published(
        self, event_ids: Sequence[uuid.UUID], placements: Sequence[Placement]
    ) -> None:
        self.calls.append(("published", (list(event_ids), [p.stream for p in placements])))

    def mark_failed(self, event_ids: Sequence[uuid.UUID], reason: str) -> None:
        self.calls.append(("failed", (list(event_ids), reason)))


class DeadStore:
    def append_many(self, *_: object) -> list[StoredEvent]:
        raise StoreUnavailable("Redis unavailable: refused")

    def close(self) -> None:
        pass


def test_only_important_events_are_journaled_and_before_the_push() -> None:
    store = MemoryEventStore()
    journal = RecordingJournal(store)
    done = TaskCompleted(user_id="u1", task_id="t", duration_seconds=1)
    update = TaskUpdated(user_id="u1", task_id="t", percent=5)

    OutboxWriter(store, journal).append_many([(update, ()), (done, ["u2"])])

    assert journal.calls == [
        ("record", ([done.event_id], 0)),
        ("published", ([done.event_id], ["u:u1", "u:u2"])),
    ]


def test_a_failed_push_is_journaled_with_its_reason_and_raised() -> None:
    journal = RecordingJournal(MemoryEventStore())
    done = TaskCompleted(user_id="u1", task_id="t", duration_seconds=1)

    with pytest.raises(StoreUnavailable):
        OutboxWriter(DeadStore(), journal).append(done)

    assert journal.calls[-1] == (
        "failed",
        ([done.event_id], "StoreUnavailable: Redis unavailable: refused"),
    )


def test_a_journal_that_cannot_record_does_not_stop_the_push() -> None:
    store = MemoryEventStore()
    done = TaskCompleted(user_id="u1", task_id="t", duration_seconds=1)

    OutboxWriter(store, RecordingJournal(store, broken=True)).append(done)

    assert len(store.read_after("u:u1", "0-0", 10)) == 1


def test_a_second_push_of_the_same_event_is_not_placed_again() -> None:
    store = MemoryEventStore()
    journal = RecordingJournal(store)
    done = TaskCompleted(user_id="u1", task_id="t", duration_seconds=1)
    writer = OutboxWriter(store, journal)

    writer.append(done)
    writer.append(done)

    assert journal.calls[-1] == ("published", ([done.event_id], []))
    assert len(store.read_after("u:u1", "0-0", 10)) == 1


def test_retries_of_a_failing_batch_count_as_one_failed_attempt() -> None:
    journal = RecordingJournal(MemoryEventStore())
    done = TaskCompleted(user_id="u1", task_id="t", duration_seconds=1)
    writer = OutboxWriter(DeadStore(), journal)

    for _ in range(3):
        with pytest.raises(StoreUnavailable):
            writer.append(done)

    assert [name for name, _ in journal.calls] == ["record", "failed", "record", "record"]


class MemorySpill:
    """The spill as a dict, as the Redis hash holds it (event id -> record)."""

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


def test_an_event_the_journal_could_not_take_is_spilled_with_its_placement_and_drained_once() -> (
    None
):
    store = MemoryEventStore()
    journal, spill = RecordingJournal(store, broken=True), MemorySpill()
    done = TaskCompleted(user_id="u1", task_id="t", duration_seconds=1)

    OutboxWriter(store, journal, spill).append_many([(done, ["u2"])])
    assert [p.stream for p in spill.records[done.event_id].placements] == ["u:u1", "u:u2"]

    with pytest.raises(OSError):
        drain_spill(spill, journal)  # still down: nothing leaves the spill
    assert list(spill.records) == [done.event_id]

    journal.broken = False
    assert drain_spill(spill, journal) == 1
    assert drain_spill(spill, journal) == 0
    assert [name for name, _ in journal.calls] == ["record", "published"]
    assert journal.calls[1] == ("published", ([done.event_id], ["u:u1", "u:u2"]))
