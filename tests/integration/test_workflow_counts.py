"""workflow.lua through WorkflowWriter on a real Redis: counts, idempotence, throttle, final."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from progress.events import (
    EventEnvelope,
    TaskCompleted,
    TaskFailed,
    TaskRetrying,
    TaskStalled,
    TaskStarted,
    WorkflowProgress,
)
from progress.keys import KeyLayout
from progress.redis_store import RedisEventStore
from progress.store import StoreSettings
from progress.workflow import (
    WORKFLOW_LUA,
    QueuedTask,
    Tally,
    TaskQueued,
    WorkflowCancelRequested,
    WorkflowCounter,
    WorkflowWriter,
    absorb,
    peek_call,
)

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def writer(redis_url: str) -> Iterator[tuple[WorkflowWriter, RedisEventStore]]:
    settings = StoreSettings(key_prefix=f"t{uuid.uuid4().hex[:6]}")
    store = RedisEventStore(redis.Redis.from_url(redis_url), settings)
    counter = WorkflowCounter(
        lambda: redis.Redis.from_url(redis_url), KeyLayout(settings.key_prefix), 600, 1.0
    )
    w = WorkflowWriter(store, counter, Clock())
    yield w, store
    w.close()


def _progress(store: RedisEventStore, user: str) -> list[WorkflowProgress]:
    stored = store.read_after(f"u:{user}", "0-0", 10_000)
    events = [
        WorkflowProgress.model_validate_json(e.data)
        for e in stored
        if b'"workflow.progress"' in e.data
    ]
    return events


def _settle(w: WorkflowWriter) -> None:
    """Let the throttle interval pass and the writer's tick release what it holds."""
    time.sleep(1.05)
    w._clock.now += 2  # type: ignore[attr-defined]
    w.tick()


def _env(user: str, task: str) -> dict[str, str]:
    return {"user_id": user, "workflow_id": "wf1", "task_id": task}


def _queued(user: str, task: str, weight: float = 1.0) -> TaskQueued:
    return TaskQueued(
        user_id=user,
        workflow_id="wf1",
        tasks=[QueuedTask(task_id=task, task_name="x", weight=weight)],
    )


def _send(w: WorkflowWriter, *events: EventEnvelope) -> None:
    w.append_many([(e, ()) for e in events])


def test_group_counts_once_and_ends_completed(
    writer: tuple[WorkflowWriter, RedisEventStore], user_id: str
) -> None:
    w, store = writer
    tasks = [f"t{i}" for i in range(3)]
    _send(w, *[_queued(user_id, t, weight=2) for t in tasks])
    _send(w, *[TaskStarted(**_env(user_id, t), task_name="x") for t in tasks])
    # a retry and a duplicate completion change nothing
    _send(w, TaskRetrying(**_env(user_id, "t0"), error_type="E", message="m", attempt=1))
    _send(w, TaskStarted(**_env(user_id, "t0"), task_name="x", attempt=2))
    _send(w, *[TaskCompleted(**_env(user_id, t), duration_seconds=1) for t in tasks])
    _send(w, TaskCompleted(**_env(user_id, "t1"), duration_seconds=1))
    assert not any(e.final for e in _progress(store, user_id)), "finishing settles first"
    _settle(w)
    events = _progress(store, user_id)
    last = events[-1]
    assert (last.total, last.done, last.failed, last.state, last.final) == (
        3,
        3,
        0,
        "completed",
        True,
    )
    assert last.percent == 100 and last.important
    assert len(events) <= 3  # first (leading edge), final; the rest held


def test_failure_ends_failed_with_task_and_reason(
    writer: tuple[WorkflowWriter, RedisEventStore], user_id: str
) -> None:
    w, store = writer
    _send(w, _queued(user_id, "a"), _queued(user_id, "b"))
    _send(w, TaskStarted(**_env(user_id, "a"), task_name="x"))
    _send(
        w,
        TaskFailed(
            **_env(user_id, "a"),
            error_type="ValueError",
            message="bad plan",
            retryable=False,
            retry_suggestion="no",
        ),
    )
    last = _progress(store, user_id)[-1]
    assert last.state == "failed" and last.failed_task_id == "a"
    assert last.failed_reason == "ValueError: bad plan" and not last.final


def test_stalled_then_lost_then_redelivered(
    writer: tuple[WorkflowWriter, RedisEventStore], user_id: str
) -> None:
    w, store = writer
    from datetime import UTC, datetime

    _send(w, TaskStarted(**_env(user_id, "a"), task_name="x"))
    _send(w, TaskStalled(**_env(user_id, "a"), last_seen_at=datetime.now(UTC), missed_heartbeats=3))
    tally = w.counter.snapshot(user_id, "wf1")  # type: ignore[union-attr]
    assert tally is not None and tally.stalled == 1 and tally.total == 1
    _send(
        w,
        TaskFailed(
            **_env(user_id, "a"),
            error_type="WorkerLost",
            message="lost",
            retryable=True,
            retry_suggestion="again",
        ),
    )
    tally = w.counter.snapshot(user_id, "wf1")  # type: ignore[union-attr]
    assert tally is not None and (tally.stalled, tally.failed, tally.finished) == (0, 1, True)
    assert _progress(store, user_id)[-1].state == "failed", "a failure is sent at once"
    _send(w, TaskRetrying(**_env(user_id, "a"), error_type="WorkerLost", message="m", attempt=1))
    tally = w.counter.snapshot(user_id, "wf1")  # type: ignore[union-attr]
    assert tally is not None and (tally.failed, tally.finished) == (0, False)


def test_held_value_released_by_tick(
    writer: tuple[WorkflowWriter, RedisEventStore], user_id: str
) -> None:
    w, store = writer
    _send(w, *[_queued(user_id, f"t{i}") for i in range(3)])
    _send(w, TaskStarted(**_env(user_id, "t0"), task_name="x"))
    assert len(_progress(store, user_id)) == 1
    assert w.tick() is not None
    _settle(w)
    events = _progress(store, user_id)
    assert len(events) == 2 and events[-1].running[0].task_id == "t0"


def test_cancel_ends_cancelled(
    writer: tuple[WorkflowWriter, RedisEventStore], user_id: str
) -> None:
    w, store = writer
    _send(w, _queued(user_id, "a"))
    _send(w, WorkflowCancelRequested(user_id=user_id, workflow_id="wf1"))
    last = _progress(store, user_id)[-1]
    assert last.state == "cancelled" and last.important


def test_reading_a_snapshot_keeps_the_counts(
    writer: tuple[WorkflowWriter, RedisEventStore], user_id: str
) -> None:
    w, store = writer
    _send(w, _queued(user_id, "a"), _queued(user_id, "b"))
    keys, args = peek_call(store.layout, user_id, "wf1")
    for _ in range(2):  # the API's read: it must neither count nor expire anything
        reply = store.client.eval(WORKFLOW_LUA, len(keys), *keys, *args)
        assert Tally.from_reply(reply).total == 2


def test_markers_of_one_workflow_fold_into_one_queue_slot(user_id: str) -> None:
    first = _queued(user_id, "a")
    assert absorb(first, _queued(user_id, "b"))
    assert not absorb(first, _queued("someone-else", "c"))
    assert not absorb(first, TaskStarted(**_env(user_id, "a"), task_name="x"))
    assert [t.task_id for t in first.tasks] == ["a", "b"]


def test_a_snapshot_read_while_a_value_is_held_leaves_it_for_the_tick(
    writer: tuple[WorkflowWriter, RedisEventStore], user_id: str
) -> None:
    # A page that reconnects reads the snapshot (GET /api/v1/workflows/{id}) while the
    # workers hold a throttled value: every other stream must still get that value.
    w, store = writer
    _send(w, *[_queued(user_id, f"t{i}") for i in range(3)])
    _send(w, TaskStarted(**_env(user_id, "t0"), task_name="x"))
    assert len(_progress(store, user_id)) == 1, "the second value is held"
    time.sleep(1.05)
    keys, args = peek_call(store.layout, user_id, "wf1")
    store.client.eval(WORKFLOW_LUA, len(keys), *keys, *args)
    _settle(w)
    events = _progress(store, user_id)
    assert len(events) == 2 and events[-1].running[0].task_id == "t0"


def test_closing_sends_a_held_value_at_once(
    writer: tuple[WorkflowWriter, RedisEventStore], user_id: str
) -> None:
    # The last task of a workflow ends and its process shuts down within the throttle interval:
    # no other process would ever send the held final value.
    w, store = writer
    _send(w, _queued(user_id, "a"))
    _send(w, TaskStarted(**_env(user_id, "a"), task_name="x"))
    _send(w, TaskCompleted(**_env(user_id, "a"), duration_seconds=1))
    assert not _progress(store, user_id)[-1].final, "the final value is held"
    w.close()
    last = _progress(store, user_id)[-1]
    assert last.final and last.state == "completed" and last.important
