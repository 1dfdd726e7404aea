"""Issue 4: no task stays "running" forever when its worker dies."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest

import progress
from progress.events import TaskStalled, TaskStarted
from progress.keys import user_stream
from progress.redis_store import RedisEventStore, connect
from progress.settings import ProgressSettings
from progress.store import StoreSettings
from progress.watchdog import FAIL_AFTER, STALL_AFTER, watch_running_tasks
from tests.integration.conftest import MakeWorkerStack, has, types
from workers import contracts

pytestmark = pytest.mark.integration


@pytest.fixture
def store(redis_url: str, user_id: str) -> Iterator[RedisEventStore]:
    # Its own key prefix: the running-task index is global, and other tests leave tasks in it.
    prefix = f"wd-{user_id}"
    progress.configure(ProgressSettings(redis_url=redis_url, key_prefix=prefix))
    store = RedisEventStore(connect(redis_url), StoreSettings(key_prefix=prefix))
    yield store
    store.close()
    progress.configure(None)


def kinds(store: RedisEventStore, user: str) -> list[str]:
    return [orjson.loads(e.data)["type"] for e in store.read_after(user_stream(user), "0-0", 100)]


def test_silent_task_is_stalled_then_lost_once(store: RedisEventStore, user_id: str) -> None:
    beat = 10.0
    silent_since = datetime.now(UTC) - timedelta(seconds=beat * STALL_AFTER + 1)
    store.append(TaskStarted(user_id=user_id, task_id="t", task_name="x", occurred_at=silent_since))

    assert watch_running_tasks(store, beat) == {"stalled": 1, "lost": 0}
    assert watch_running_tasks(store, beat) == {"stalled": 0, "lost": 0}, "stalled only once"
    assert kinds(store, user_id)[-1] == "task.progress-stalled"

    lost_since = datetime.now(UTC) - timedelta(seconds=beat * FAIL_AFTER + 1)
    store.append(TaskStarted(user_id=user_id, task_id="t2", task_name="x", occurred_at=lost_since))
    assert watch_running_tasks(store, beat) == {"stalled": 1, "lost": 0}, "stalled before lost"
    stalled_since = datetime.now(UTC) - timedelta(seconds=beat * (FAIL_AFTER - STALL_AFTER) + 1)
    store.append(
        TaskStalled(
            user_id=user_id,
            task_id="t2",
            last_seen_at=lost_since,
            missed_heartbeats=STALL_AFTER,
            occurred_at=stalled_since,
        )
    )
    assert watch_running_tasks(store, beat)["lost"] == 1
    failed = orjson.loads(store.read_after(user_stream(user_id), "0-0", 100)[-1].data)
    assert (failed["type"], failed["error_type"], failed["retryable"]) == (
        "task.progress-failed",
        "WorkerLost",
        True,
    )
    assert watch_running_tasks(store, beat)["lost"] == 0


def test_sigkilled_worker_leaves_stalled_then_failed_never_endless_running(
    worker_stack: MakeWorkerStack, user_id: str
) -> None:
    stack = worker_stack(
        9,
        10,
        WORKER_LOCAL_TOKENS_PER_SECOND="5",
        # Stalled after 9 s of silence, lost after 18 s: the watching worker may take a few
        # seconds to start on a loaded machine and must still see the task stall first.
        PROGRESS_HEARTBEAT_SECONDS="3",
        WORKER_WATCHDOG_SECONDS="0.5",
        PROGRESS_WATCHDOG_SECONDS="0.5",
    )
    with stack.worker(concurrency=4) as victim:
        contracts.start_novel(user_id, None, "Doomed", "A crash mid-outline", 3)
        started = stack.events(user_id, outline_reporting, timeout=20)
        assert outline_reporting(started), "the outline never started"
        victim.stop(signal.SIGKILL)

    stack.worker(concurrency=4, beat=True)
    seen = types(stack.events(user_id, has("task.progress-failed"), timeout=40))
    assert "task.progress-stalled" in seen, seen
    assert seen.index("task.progress-stalled") < seen.index("task.progress-failed")


def outline_reporting(events: list[dict]) -> bool:
    """The outline task started and reported progress (not only the workflow's first task)."""
    outline = {
        e["task_id"]
        for e in events
        if e["type"] == "task.progress-started" and e["task_name"] == "workers.generate_outline"
    }
    return any(e["type"] == "task.progress-updated" and e["task_id"] in outline for e in events)


def test_a_task_redelivered_after_a_crash_starts_again_with_its_attempt_number(
    worker_stack: MakeWorkerStack, user_id: str
) -> None:
    stack = worker_stack(
        11, 12, WORKER_LOCAL_TOKENS_PER_SECOND="10", WORKER_VISIBILITY_TIMEOUT_SECONDS="2"
    )
    with stack.worker(concurrency=4) as victim:
        contracts.start_novel(user_id, None, "Again", "Crash and come back", 1)
        started = stack.events(user_id, outline_reporting, timeout=20)
        assert outline_reporting(started), "nothing started"
        victim.stop(signal.SIGKILL)
    time.sleep(2.5)  # past the visibility timeout: the next worker restores the message

    def second_attempt_done(found: list[dict]) -> bool:
        attempts = [e.get("attempt") for e in found if e["type"] == "task.progress-started"]
        return 2 in attempts and any(
            e["type"] == "workflow.status-changed" and e["new_status"] == "done" for e in found
        )

    stack.worker(concurrency=4)
    found = stack.events(user_id, second_attempt_done, timeout=40)
    attempts = [e.get("attempt") for e in found if e["type"] == "task.progress-started"]
    assert 2 in attempts, attempts
