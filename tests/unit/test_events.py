"""Issue 2: the event schema accepts every documented type and names bad fields (R3, R4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from progress.errors import InvalidEvent
from progress.events import EVENT_TYPES, TaskUpdated, encode_event, parse_event

pytestmark = pytest.mark.unit

BASE = {"user_id": "u1", "task_id": "t1"}

VALID = {
    "task.progress-started": {**BASE, "task_name": "outline", "estimated_seconds": 30},
    "task.progress-updated": {**BASE, "percent": 42.5, "stage": "drafting", "message": "ch 2"},
    "task.progress-heartbeat": {**BASE, "elapsed_seconds": 61, "last_percent": 40},
    "task.progress-completed": {**BASE, "result_summary": "3 chapters", "duration_seconds": 90},
    "task.progress-failed": {
        **BASE,
        "error_type": "Timeout",
        "message": "too slow",
        "retryable": True,
        "retry_suggestion": "Try again",
        "attempt": 2,
    },
    "task.progress-retrying": {**BASE, "error_type": "E", "message": "m", "attempt": 1},
    "task.progress-cancelled": {**BASE, "reason": "revoked by user"},
    "task.progress-stalled": {
        **BASE,
        "last_seen_at": "2026-01-01T00:00:00Z",
        "missed_heartbeats": 3,
    },
    "content.novel-created": {"user_id": "u1", "novel_id": "n1", "title": "The Tide"},
    "content.chapter-updated": {
        "user_id": "u1",
        "novel_id": "n1",
        "chapters": [{"chapter_id": "c1", "number": 1, "summary": "A storm."}],
    },
    "workflow.status-changed": {
        "user_id": "u1",
        "workflow_id": "w1",
        "old_status": "outlining",
        "new_status": "drafting",
    },
    "system.notification": {
        "audience": "broadcast",
        "level": "warning",
        "message": "Maintenance at 2am",
        "suggested_action": "Save your work",
    },
    "system.error": {
        "audience": "broadcast",
        "severity": "high",
        "message": "LLM provider down",
        "affected_scope": "chapter generation",
    },
    "workflow.progress": {
        "user_id": "u1",
        "workflow_id": "n1",
        "state": "running",
        "total": 12,
        "done": 5,
        "percent": 41.7,
        "running": [{"task_id": "t1", "task_name": "workers.generate_chapter"}],
        "eta_seconds": 42.5,
    },
}


def test_every_documented_type_has_an_example() -> None:
    assert set(VALID) == set(EVENT_TYPES)


@pytest.mark.parametrize("kind", sorted(VALID))
def test_each_type_round_trips_through_json(kind: str) -> None:
    event = parse_event({"type": kind, **VALID[kind]})

    again = parse_event(encode_event(event))

    assert again == event
    assert again.type == kind
    assert again.occurred_at.tzinfo is not None


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"type": "task.progress-updated", **BASE, "percent": 101}, "percent"),
        ({"type": "task.progress-updated", "user_id": "u1", "percent": 5}, "task_id"),
        ({"type": "task.progress-updated", **BASE, "percent": 5, "colour": "red"}, "colour"),
        (
            {"type": "task.progress-updated", "user_id": "u{1}", "task_id": "t", "percent": 5},
            "user_id",
        ),
        (
            {
                "type": "system.notification",
                "audience": "broadcast",
                "level": "loud",
                "message": "x",
            },
            "level",
        ),
        (
            {"type": "content.chapter-updated", "user_id": "u", "novel_id": "n", "chapters": []},
            "chapters",
        ),
        ({"type": "no.such-type"}, "type"),
        ({}, "type"),
    ],
)
def test_invalid_data_is_rejected_naming_the_field(data: dict, field: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(data)

    assert field in caught.value.errors
    assert field in str(caught.value)


def test_user_events_need_a_user_and_session_events_a_session() -> None:
    with pytest.raises(InvalidEvent, match="user_id"):
        parse_event({"type": "system.notification", "level": "info", "message": "hi"})
    with pytest.raises(InvalidEvent, match="session"):
        parse_event(
            {
                **VALID["task.progress-cancelled"],
                "type": "task.progress-cancelled",
                "audience": "session",
            }
        )


def test_importance_follows_the_type_and_can_be_overridden() -> None:
    assert not TaskUpdated(**BASE, percent=1).important
    assert parse_event(
        {"type": "task.progress-completed", **VALID["task.progress-completed"]}
    ).important
    assert TaskUpdated(**BASE, percent=1, important=True).important


def test_occurred_at_is_normalised_to_utc_and_naive_times_are_refused() -> None:
    paris = timezone(timedelta(hours=1))
    event = TaskUpdated(**BASE, percent=1, occurred_at=datetime(2026, 1, 1, 13, tzinfo=paris))
    assert event.occurred_at == datetime(2026, 1, 1, 12, tzinfo=UTC)
    with pytest.raises(InvalidEvent, match="occurred_at"):
        parse_event(
            {
                "type": "task.progress-updated",
                **BASE,
                "percent": 1,
                "occurred_at": "2026-01-01T12:00:00",
            }
        )
