"""Issue 15 (items 8, 10, 11): a task always ends, and its novel never stays in progress.

(a) Redis (broker, result store and events) stops while a task runs and comes back with or
without its data: the task ends failed or completed within the watchdog's window, its novel
leaves the in-progress state, and the stream and snapshot show the end.
(b) A worker is killed mid-task: the watchdog fails the task and its novel leaves
``outlining``; the broker's redelivery then shows ``retrying`` before the task runs again.
(c) A step fails while the database is down: once it is back, the watchdog's sweep fails the
novel that could not be moved then.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from kombu.exceptions import OperationalError

import progress
from progress.redis_server import RedisServer
from progress.redis_store import RedisEventStore, connect
from progress.settings import ProgressSettings
from tests.integration.conftest import MakeWorkerStack, WorkerStack
from tests.integration.test_watchdog import outline_reporting
from tests.postgres_server import PostgresServer
from workers import contracts, resources
from workers.migrate import upgrade
from workers.settings import WorkerSettings

pytestmark = pytest.mark.integration

IN_PROGRESS = {"queued", "outlining", "drafting", "reviewing"}
TERMINAL = {"task.progress-completed", "task.progress-failed", "task.progress-cancelled"}
#: Short beats so the watchdog's window (6 heartbeats of silence) is a few seconds.
FAST_WATCHDOG = {
    "PROGRESS_HEARTBEAT_SECONDS": "1",
    "WORKER_WATCHDOG_SECONDS": "0.5",
    "PROGRESS_WATCHDOG_SECONDS": "0.5",
}


@pytest.fixture
def own_redis_stack(tmp_path: Path) -> Iterator[tuple[RedisServer, WorkerStack]]:
    """Workers whose broker, result store and events all live on a Redis the test may stop."""
    with RedisServer() as server:
        database = f"sqlite:///{tmp_path / 'novels.db'}"
        upgrade(database)
        redis_url = f"{server.url}/0"
        resources.configure(WorkerSettings(redis_url=redis_url, database_url=database))
        progress.configure(ProgressSettings(redis_url=redis_url))
        env = {"REDIS_URL": redis_url, "DATABASE_URL": database}
        stack = WorkerStack(env, RedisEventStore(connect(redis_url)))
        try:
            yield server, stack
        finally:
            for worker in stack.started:
                worker.close()
            stack.store.close()
            progress.configure(None)
            resources.configure(None)


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def outline_task(events: list[dict]) -> str:
    return next(
        e["task_id"]
        for e in events
        if e["type"] == "task.progress-started" and e["task_name"] == "workers.generate_outline"
    )


def stop_saving(server: RedisServer) -> None:
    """Stop Redis as a clean shutdown does: its data is saved and loaded again at start."""
    client = redis.Redis.from_url(server.url)
    try:
        client.shutdown(save=True)
    except redis.ConnectionError:
        pass  # the server closed the connection as it went down
    finally:
        client.close()


def broker_answers() -> bool:
    """True once this process's broker connections work again (the first use of one that the
    restart closed fails, and the pool then replaces it)."""
    try:
        resources.celery_app().control.ping(timeout=0.1)
    except (redis.ConnectionError, OperationalError):
        return False
    return True


def novel_status(novel_id: str, user_id: str) -> str:
    return contracts.get_novel(novel_id, user_id).status


@pytest.mark.parametrize("keep_data", [True, False], ids=["with-data", "without-data"])
def test_a_task_running_through_a_redis_outage_ends_and_its_novel_leaves_progress(
    own_redis_stack: tuple[RedisServer, WorkerStack], user_id: str, keep_data: bool
) -> None:
    server, stack = own_redis_stack
    worker = stack.worker(
        beat=True,
        WORKER_LOCAL_TOKENS_PER_SECOND="4",
        WORKER_TOKENS_PER_CHAPTER="30",
        **FAST_WATCHDOG,
    )
    novel, _ = contracts.start_novel(user_id, None, "Outage", "A storm takes the lights", 3)
    found = stack.events(user_id, outline_reporting, timeout=30)
    assert outline_reporting(found), worker.log_text[-3000:]
    task_id = outline_task(found)

    if keep_data:
        stop_saving(server)
    server.stop()
    # Down until the worker could not store the outline's end in the result store either
    # (Celery retries that for about 20 s): the case where task_failure never fires.
    assert wait_for(lambda: "Retry limit exceeded" in worker.log_text, 60), worker.log_text[-3000:]
    server.start()
    assert wait_for(broker_answers, 10), "this process cannot reach the restarted broker"
    # Celery's worker may exit on the lost broker connection: start one as its supervisor would.
    stack.worker(beat=True, **FAST_WATCHDOG)

    def ended() -> bool:
        snapshot = stack.store.task_snapshot(user_id, task_id)
        return snapshot is not None and snapshot.status in {"completed", "failed"}

    # The watchdog's window: 6 silent heartbeats of 1 s, a beat of 0.5 s, and slack.
    assert wait_for(ended, 20), (
        stack.store.task_snapshot(user_id, task_id),
        worker.log_text[-3000:],
    )
    assert wait_for(lambda: novel_status(novel.id, user_id) not in IN_PROGRESS, 20), novel_status(
        novel.id, user_id
    )
    kinds = [e["type"] for e in stack.events(user_id) if e.get("task_id") == task_id]
    assert kinds[-1] in TERMINAL, kinds
    # It stays ended: no heartbeat brings it back to running.
    assert not wait_for(lambda: not ended(), 3), stack.store.task_snapshot(user_id, task_id)


def test_a_lost_task_fails_its_novel_and_its_redelivery_retries_before_completing(
    worker_stack: MakeWorkerStack, user_id: str
) -> None:
    visibility = 15.0
    stack = worker_stack(
        13,
        14,
        WORKER_LOCAL_TOKENS_PER_SECOND="10",
        WORKER_TOKENS_PER_CHAPTER="30",
        WORKER_VISIBILITY_TIMEOUT_SECONDS=str(int(visibility)),
        **FAST_WATCHDOG,
    )
    with stack.worker(concurrency=2) as victim:
        novel, _ = contracts.start_novel(user_id, None, "Crash", "A crash mid-outline", 1)
        found = stack.events(user_id, outline_reporting, timeout=30)
        assert outline_reporting(found), victim.log_text[-3000:]
        victim.stop(signal.SIGKILL)
    redeliverable_at = time.monotonic() + visibility
    task_id = outline_task(found)

    def of_task(events: list[dict]) -> list[dict]:
        return [e for e in events if e.get("task_id") == task_id]

    watcher = stack.worker(concurrency=2, beat=True)
    lost = stack.events(
        user_id,
        lambda ev: any(e["type"] == "task.progress-failed" for e in of_task(ev)),
        timeout=40,
    )
    assert [e["error_type"] for e in of_task(lost) if e["type"] == "task.progress-failed"] == [
        "WorkerLost"
    ], watcher.log_text[-3000:]
    assert wait_for(lambda: novel_status(novel.id, user_id) not in IN_PROGRESS, 10), novel_status(
        novel.id, user_id
    )

    # A worker starting once the message's visibility timeout passed restores it: the
    # broker's redelivery of the task already shown as failed.
    wait_for(lambda: time.monotonic() >= redeliverable_at, visibility)
    stack.worker(concurrency=2)
    done = stack.events(
        user_id,
        lambda ev: any(e["type"] == "task.progress-completed" for e in of_task(ev)),
        timeout=60,
    )
    kinds = [e["type"] for e in of_task(done)]
    assert "task.progress-completed" in kinds, (kinds, watcher.log_text[-3000:])
    after_failure = kinds[kinds.index("task.progress-failed") + 1 :]
    assert after_failure[:2] == ["task.progress-retrying", "task.progress-started"], kinds
    # The novel follows the run that came back: its workflow goes on to the end.
    assert wait_for(lambda: novel_status(novel.id, user_id) == "done", 60), novel_status(
        novel.id, user_id
    )


@pytest.fixture
def own_database_stack(redis_url: str) -> Iterator[tuple[PostgresServer, WorkerStack]]:
    """Workers on the session's Redis and on a PostgreSQL the test may stop."""
    with PostgresServer() as server:
        upgrade(server.url)
        resources.configure(
            WorkerSettings(redis_url=redis_url, database_url=server.url, broker_db=15, result_db=15)
        )
        progress.configure(ProgressSettings(redis_url=redis_url))
        env = {
            "REDIS_URL": redis_url,
            "DATABASE_URL": server.url,
            "WORKER_BROKER_DB": "15",
            "WORKER_RESULT_DB": "15",
        }
        stack = WorkerStack(env, RedisEventStore(connect(redis_url)))
        try:
            yield server, stack
        finally:
            for worker in stack.started:
                worker.close()
            stack.store.close()
            progress.configure(None)
            resources.configure(None)


def test_a_step_failing_while_the_database_is_down_fails_its_novel_once_it_is_back(
    own_database_stack: tuple[PostgresServer, WorkerStack], user_id: str
) -> None:
    server, stack = own_database_stack
    worker = stack.worker(
        beat=True,
        WORKER_LOCAL_TOKENS_PER_SECOND="8",
        WORKER_TOKENS_PER_CHAPTER="30",
        **FAST_WATCHDOG,
    )
    novel, _ = contracts.start_novel(user_id, None, "Offline", "The archive burns", 3)
    found = stack.events(user_id, outline_reporting, timeout=30)
    assert outline_reporting(found), worker.log_text[-3000:]
    task_id = outline_task(found)

    server.stop()
    # The outline cannot store its result: it fails, and neither the worker nor the error
    # callback can move the novel.
    failed = stack.events(
        user_id,
        lambda ev: any(e["type"] == "task.progress-failed" and e["task_id"] == task_id for e in ev),
        timeout=30,
    )
    assert any(e["type"] == "task.progress-failed" for e in failed), worker.log_text[-3000:]
    server.start()

    assert wait_for(lambda: novel_status(novel.id, user_id) == "failed", 20), (
        novel_status(novel.id, user_id),
        worker.log_text[-3000:],
    )
    stages = [
        e["new_status"] for e in stack.events(user_id) if e["type"] == "workflow.status-changed"
    ]
    assert stages[-1] == "failed", stages
