"""Issue 19 items 1 and 5: who cancelled a task reaches its event and snapshot; a system
error's suggested action reaches its event from the operator's command line."""

from __future__ import annotations

from datetime import UTC, datetime

from api.notifications import ErrorRequest, build_events
from api.notify_cli import parse
from progress.events import SystemError, TaskCancelled
from progress.snapshot import TaskSnapshot, snapshot_fields

AT = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def snapshot_of(event: TaskCancelled) -> TaskSnapshot:
    fields = snapshot_fields(event)
    assert fields is not None
    return TaskSnapshot.from_hash(fields)


def test_a_cancelled_snapshot_names_who_asked_and_why() -> None:
    asked = TaskCancelled(
        task_id="t1", user_id="u1", occurred_at=AT, reason="cancelled by the writer",
        cancelled_by="u1",
    )  # fmt: skip
    snapshot = snapshot_of(asked)
    assert (snapshot.status, snapshot.message, snapshot.cancelled_by) == (
        "cancelled",
        "cancelled by the writer",
        "u1",
    )
    expired = snapshot_of(
        TaskCancelled(task_id="t1", user_id="u1", occurred_at=AT, reason="expired")
    )
    assert (expired.message, expired.cancelled_by) == ("expired", None)


def test_an_operators_error_carries_its_suggested_action() -> None:
    request = parse(["--error", "high", "Generation fails", "--action", "Retry in 5 minutes"])
    assert isinstance(request, ErrorRequest)
    (event,) = build_events(request)
    assert isinstance(event, SystemError)
    assert (event.suggested_action, event.affected_scope) == ("Retry in 5 minutes", "platform")
    (without,) = build_events(parse(["--error", "low", "Slow"]))
    assert isinstance(without, SystemError) and without.suggested_action is None
