"""Issue 2 (R3.1-R3.6): a real worker's tasks leave the right events in the user's stream."""

from __future__ import annotations

import time

import pytest
from celery import Celery

import progress
from tests.integration.conftest import HEARTBEAT_SECONDS, EventsOf, has, types

pytestmark = pytest.mark.integration

HEARTBEAT = frozenset({"task.progress-heartbeat"})


def test_fifty_updates_in_two_seconds_are_throttled_to_three_with_final_percent(
    worker: Celery, events_of: EventsOf, user_id: str
) -> None:
    with progress.acting_as(user_id, session_id="s1"):
        result = worker.tasks["t.fifty_updates"].delay()
    assert result.get(timeout=15) == {"summary": "50 steps done"}

    events = events_of(user_id, has("task.progress-completed"))
    seen = types(events, skip=HEARTBEAT)
    updates = [e for e in events if e["type"] == "task.progress-updated"]
    assert seen[0] == "task.progress-started"
    assert seen[-1] == "task.progress-completed"
    assert seen.count("task.progress-started") == 1
    assert 1 <= len(updates) <= 3
    assert updates[-1]["percent"] == 100
    percents = [u["percent"] for u in updates]
    assert percents == sorted(percents)
    assert events[-1]["result_summary"] == "50 steps done"
    assert {e["session_id"] for e in events} == {"s1"}
    assert {e["task_id"] for e in events} == {result.id}


def test_failing_task_reports_failed_with_type_message_and_suggestion(
    worker: Celery, events_of: EventsOf, user_id: str
) -> None:
    with progress.acting_as(user_id):
        result = worker.tasks["t.fails"].delay()
    with pytest.raises(ValueError, match="premise"):
        result.get(timeout=10)

    events = events_of(user_id, has("task.progress-failed"))
    assert types(events, skip=HEARTBEAT) == [
        "task.progress-started",
        "task.progress-updated",
        "task.progress-failed",
    ]
    failed = events[-1]
    assert failed["error_type"] == "ValueError"
    assert failed["message"] == "the premise is empty"
    assert failed["retryable"] is False
    assert "Try again" in failed["retry_suggestion"]


def test_autoretried_task_reports_retrying_then_completed(
    worker: Celery, events_of: EventsOf, user_id: str
) -> None:
    with progress.acting_as(user_id):
        result = worker.tasks["t.flaky"].delay()
    assert result.get(timeout=15) == "ok on retry"

    events = events_of(user_id, has("task.progress-completed"))
    assert types(events, skip=HEARTBEAT) == [
        "task.progress-started",
        "task.progress-updated",
        "task.progress-retrying",
        "task.progress-started",
        "task.progress-updated",
        "task.progress-completed",
    ]
    retrying = events[2]
    assert retrying["error_type"] == "ConnectionError"
    assert retrying["attempt"] == 1
    assert [e["attempt"] for e in events if e["type"] == "task.progress-started"] == [1, 2]


def test_revoked_task_reports_cancelled(worker: Celery, events_of: EventsOf, user_id: str) -> None:
    with progress.acting_as(user_id):
        result = worker.tasks["t.sleeps"].apply_async((0.1,), countdown=1.5)
    result.revoke()

    events = events_of(user_id, has("task.progress-cancelled"))
    assert types(events) == ["task.progress-cancelled"]
    assert events[0]["task_id"] == result.id


def test_long_task_sends_heartbeats_and_none_after_it_ends(
    worker: Celery, events_of: EventsOf, user_id: str
) -> None:
    with progress.acting_as(user_id):
        result = worker.tasks["t.sleeps"].delay(HEARTBEAT_SECONDS * 4)
    result.get(timeout=15)

    events = events_of(user_id, has("task.progress-completed"))
    beats = [e for e in events if e["type"] == "task.progress-heartbeat"]
    assert len(beats) >= 2
    assert all(b["last_percent"] == 1 for b in beats)
    time.sleep(HEARTBEAT_SECONDS * 3)
    assert types(events_of(user_id))[-1] == "task.progress-completed"


def test_users_never_see_each_others_events(
    worker: Celery, events_of: EventsOf, user_id: str
) -> None:
    other = f"{user_id}-other"
    with progress.acting_as(user_id):
        mine = worker.tasks["t.step"].delay()
    with progress.acting_as(other):
        theirs = worker.tasks["t.step"].delay()
    mine.get(timeout=10)
    theirs.get(timeout=10)

    my_events = events_of(user_id, has("task.progress-completed"))
    their_events = events_of(other, has("task.progress-completed"))
    assert {e["task_id"] for e in my_events} == {mine.id}
    assert {e["task_id"] for e in their_events} == {theirs.id}
    assert {e["user_id"] for e in my_events + their_events} == {user_id, other}


def test_chain_children_inherit_the_user(worker: Celery, events_of: EventsOf, user_id: str) -> None:
    with progress.acting_as(user_id, session_id="s9"):
        worker.tasks["t.chain_of_three"].delay().get(timeout=10)

    events = events_of(user_id, has("task.progress-completed", 3))
    completed = [e for e in events if e["type"] == "task.progress-completed"]
    assert len(completed) == 3
    assert len({e["task_id"] for e in completed}) == 3
    assert {e["session_id"] for e in events} == {"s9"}


def test_task_started_from_inside_a_task_inherits_the_user(
    worker: Celery, events_of: EventsOf, user_id: str
) -> None:
    with progress.acting_as(user_id):
        child_id = worker.tasks["t.spawns_child"].delay().get(timeout=10)

    events = events_of(user_id, has("task.progress-completed", 2))
    assert child_id in {e["task_id"] for e in events}


def test_task_without_identity_runs_and_stores_nothing(
    worker: Celery, events_of: EventsOf, user_id: str
) -> None:
    assert worker.tasks["t.step"].delay().get(timeout=10) == 1
    assert events_of(user_id) == []


def test_untracked_task_emits_nothing(worker: Celery, events_of: EventsOf, user_id: str) -> None:
    with progress.acting_as(user_id):
        assert worker.tasks["t.untracked"].delay().get(timeout=10) == "no events for me"
    time.sleep(0.3)
    assert events_of(user_id) == []
