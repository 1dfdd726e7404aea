"""Issue 4: no task stays "running" forever when its worker dies."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

import progress
from progress.events import TaskStarted
from progress.keys import user_stream
from progress.redis_server import RedisServer
from progress.redis_store import RedisEventStore, connect
from progress.settings import ProgressSettings
from progress.store import StoreSettings
from tests.workers import WorkerProcess
from workers import contracts, resources
from workers.migrate import upgrade
from workers.settings import WorkerSettings
from workers.watchdog import FAIL_AFTER, STALL_AFTER, watch_running_tasks

pytestmark = pytest.mark.integration


@pytest.fixture
def store(redis_url: str, user_id: str) -> Iterator[RedisEventStore]:
    # Its own key prefix: the running-task index is global, and other tests leave tasks in it.
    prefix = f"wd-{user_id}"
    progress.configure(ProgressSettings(redis_url=redis_url, key_prefix=prefix))
    store = RedisEventStore(connect(redis_url), StoreSettings(prefix=prefix))
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
    assert watch_running_tasks(store, beat)["lost"] == 1
    failed = orjson.loads(store.read_after(user_stream(user_id), "0-0", 100)[-1].data)
    assert (failed["type"], failed["error_type"], failed["retryable"]) == (
        "task.progress-failed",
        "WorkerLost",
        True,
    )
    assert watch_running_tasks(store, beat)["lost"] == 0


def test_sigkilled_worker_leaves_stalled_then_failed_never_endless_running(
    redis_server: RedisServer, tmp_path: Path, user_id: str
) -> None:
    database = f"sqlite:///{tmp_path / 'novels.db'}"
    upgrade(database)
    env = {
        "REDIS_URL": f"{redis_server.url}/0",
        "DATABASE_URL": database,
        "WORKER_BROKER_DB": "9",
        "WORKER_RESULT_DB": "10",
        "WORKER_LOCAL_TOKENS_PER_SECOND": "5",
        "PROGRESS_HEARTBEAT_SECONDS": "0.5",
        "WORKER_WATCHDOG_SECONDS": "0.5",
    }
    resources.configure(
        WorkerSettings(redis_url=env["REDIS_URL"], database_url=database, broker_db=9, result_db=10)
    )
    progress.configure(ProgressSettings(redis_url=env["REDIS_URL"]))
    store = RedisEventStore(connect(env["REDIS_URL"]))
    try:
        with WorkerProcess(env) as victim:
            contracts.start_novel(user_id, None, "Doomed", "A crash mid-outline", 3)
            deadline = time.monotonic() + 20
            while "task.progress-updated" not in kinds(store, user_id):
                assert time.monotonic() < deadline, "the outline never started"
                time.sleep(0.1)
            victim.stop(signal.SIGKILL)

        with WorkerProcess(env, beat=True):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                seen = kinds(store, user_id)
                if "task.progress-failed" in seen:
                    break
                time.sleep(0.2)
        assert "task.progress-stalled" in seen
        assert seen.index("task.progress-stalled") < seen.index("task.progress-failed")
    finally:
        store.close()
        progress.configure(None)
        resources.configure(None)


def test_a_task_redelivered_after_a_crash_starts_again_with_its_attempt_number(
    redis_server: RedisServer, tmp_path: Path, user_id: str
) -> None:
    database = f"sqlite:///{tmp_path / 'novels.db'}"
    upgrade(database)
    env = {
        "REDIS_URL": f"{redis_server.url}/0",
        "DATABASE_URL": database,
        "WORKER_BROKER_DB": "11",
        "WORKER_RESULT_DB": "12",
        "WORKER_LOCAL_TOKENS_PER_SECOND": "10",
        "WORKER_VISIBILITY_TIMEOUT_SECONDS": "2",
    }
    resources.configure(
        WorkerSettings(
            redis_url=env["REDIS_URL"], database_url=database, broker_db=11, result_db=12
        )
    )
    progress.configure(ProgressSettings(redis_url=env["REDIS_URL"]))
    store = RedisEventStore(connect(env["REDIS_URL"]))
    try:
        with WorkerProcess(env) as victim:
            contracts.start_novel(user_id, None, "Again", "Crash and come back", 1)
            deadline = time.monotonic() + 20
            while "task.progress-updated" not in kinds(store, user_id):
                assert time.monotonic() < deadline, "nothing started"
                time.sleep(0.1)
            victim.stop(signal.SIGKILL)
        time.sleep(2.5)  # past the visibility timeout: the next worker restores the message
        with WorkerProcess(env):
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline:
                found = [
                    orjson.loads(e.data) for e in store.read_after(user_stream(user_id), "0-0", 500)
                ]
                attempts = [e.get("attempt") for e in found if e["type"] == "task.progress-started"]
                if 2 in attempts and any(
                    e["type"] == "workflow.status-changed" and e["new_status"] == "done"
                    for e in found
                ):
                    break
                time.sleep(0.2)
        assert 2 in attempts, attempts
    finally:
        store.close()
        progress.configure(None)
        resources.configure(None)
