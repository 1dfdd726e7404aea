"""No task stays "running" forever: detect tasks whose heartbeats stopped.

A running task proves it lives with every started, updated, heartbeat or retrying event (the
store keeps the time in a sorted set). After ``STALL_AFTER`` silent heartbeat intervals it is
reported ``stalled``; after ``FAIL_AFTER`` it is ``failed`` with "worker lost" and a retry
suggestion, but only once it showed as stalled for ``FAIL_AFTER - STALL_AFTER`` intervals: after
a Redis outage every task looks long silent (its heartbeats could not be stored), and a live
one proves it lives with its next heartbeat instead of being declared lost (and later
``completed`` after a ``failed``). A task redelivered by ``acks_late`` shows ``retrying`` and
``started`` again and leaves the set's silent part by itself.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TypedDict

from progress.events import EventEnvelope, TaskFailed, TaskStalled
from progress.redis_store import RedisEventStore
from progress.runtime import store_now
from progress.snapshot import TaskSnapshot

STALL_AFTER = 3
FAIL_AFTER = 6


class _Subject(TypedDict):
    """The envelope fields of a watchdog event: whose task it is about."""

    user_id: str
    task_id: str
    novel_id: str | None
    workflow_id: str | None


WORKER_LOST_SUGGESTION = (
    "The machine running this task stopped. Start it again; what was saved is kept."
)


def watch_running_tasks(store: RedisEventStore, heartbeat_seconds: float) -> dict[str, int]:
    """Report silent tasks; return how many were declared stalled and lost.

    Every event of a run is sent in one batch: the ``failed`` ones are important, so one
    outbox commit carries them all however many tasks went silent at once.
    """
    now = time.time()
    found: list[EventEnvelope] = []
    lost: list[tuple[str, str]] = []
    for user_id, task_id, last_ms in store.quiet_tasks(STALL_AFTER * heartbeat_seconds):
        silent = now - last_ms / 1000
        snapshot = store.task_snapshot(user_id, task_id)
        envelope: _Subject = {
            "user_id": user_id,
            "task_id": task_id,
            "novel_id": snapshot.novel_id if snapshot else None,
            "workflow_id": snapshot.workflow_id if snapshot else None,
        }
        if silent >= FAIL_AFTER * heartbeat_seconds and _stalled_for(
            snapshot, now, (FAIL_AFTER - STALL_AFTER) * heartbeat_seconds
        ):
            found.append(
                TaskFailed(
                    **envelope,
                    error_type="WorkerLost",
                    message="The worker running this task stopped responding",
                    retryable=True,
                    retry_suggestion=WORKER_LOST_SUGGESTION,
                    attempt=snapshot.attempt if snapshot else 1,
                )
            )
            lost.append((user_id, task_id))
        elif snapshot is None or snapshot.status != "stalled":
            found.append(
                TaskStalled(
                    **envelope,
                    last_seen_at=datetime.fromtimestamp(last_ms / 1000, UTC),
                    missed_heartbeats=max(1, int(silent // heartbeat_seconds)),
                )
            )
    if found:
        store_now([(event, ()) for event in found])
    for user_id, task_id in lost:
        store.forget_running(user_id, task_id)
    return {"stalled": len(found) - len(lost), "lost": len(lost)}


def _stalled_for(snapshot: TaskSnapshot | None, now: float, seconds: float) -> bool:
    """True if the task was reported stalled at least ``seconds`` ago (or has no snapshot)."""
    if snapshot is None:
        return True
    return snapshot.status == "stalled" and now - snapshot.updated_at.timestamp() >= seconds
