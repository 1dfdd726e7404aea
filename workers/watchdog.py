"""No task stays "running" forever: detect tasks whose heartbeats stopped.

A running task proves it lives with every started, updated, heartbeat or retrying event (the
store keeps the time in a sorted set). After ``STALL_AFTER`` silent heartbeat intervals it is
reported ``stalled``; after ``FAIL_AFTER`` it is ``failed`` with "worker lost" and a retry
suggestion. A task redelivered by ``acks_late`` shows ``started`` again and leaves the set's
silent part by itself.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import progress
from progress.events import TaskFailed, TaskStalled
from progress.redis_store import RedisEventStore

STALL_AFTER = 3
FAIL_AFTER = 6

WORKER_LOST_SUGGESTION = (
    "The machine running this task stopped. Start it again; what was saved is kept."
)


def watch_running_tasks(store: RedisEventStore, heartbeat_seconds: float) -> dict[str, int]:
    """Report silent tasks; return how many were declared stalled and lost."""
    now = time.time()
    stalled = lost = 0
    for user_id, task_id, last_ms in store.quiet_tasks(STALL_AFTER * heartbeat_seconds):
        silent = now - last_ms / 1000
        snapshot = store.task_snapshot(user_id, task_id)
        envelope = {
            "user_id": user_id,
            "task_id": task_id,
            "novel_id": snapshot.novel_id if snapshot else None,
        }
        if silent >= FAIL_AFTER * heartbeat_seconds:
            progress.publish(
                TaskFailed(
                    **envelope,
                    error_type="WorkerLost",
                    message="The worker running this task stopped responding",
                    retryable=True,
                    retry_suggestion=WORKER_LOST_SUGGESTION,
                    attempt=snapshot.attempt if snapshot else 1,
                )
            )
            store.forget_running(user_id, task_id)
            lost += 1
        elif snapshot is None or snapshot.status != "stalled":
            progress.publish(
                TaskStalled(
                    **envelope,
                    last_seen_at=datetime.fromtimestamp(last_ms / 1000, UTC),
                    missed_heartbeats=max(1, int(silent // heartbeat_seconds)),
                )
            )
            stalled += 1
    return {"stalled": stalled, "lost": lost}
