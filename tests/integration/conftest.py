"""A real Celery worker (in-process, threads pool) on the session's real Redis."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker

import progress
from progress.keys import user_stream
from progress.redis_server import RedisServer
from progress.redis_store import RedisEventStore, connect
from progress.settings import ProgressSettings
from tests.integration.celery_tasks import register
from tests.servers import ApiServer
from tests.workers import WorkerProcess
from workers import resources
from workers.migrate import upgrade
from workers.settings import WorkerSettings

pytestmark = pytest.mark.integration

HEARTBEAT_SECONDS = 0.4


def progress_settings(redis_url: str) -> ProgressSettings:
    """Settings the tests report with: a short heartbeat, a short give-up time."""
    return ProgressSettings(
        redis_url=redis_url,
        heartbeat_seconds=HEARTBEAT_SECONDS,
        send_retry_seconds=1.0,
        flush_timeout_seconds=3.0,
    )


@pytest.fixture(scope="session")
def celery_test_app(redis_server: RedisServer) -> Celery:
    app = Celery("progress-tests", set_as_current=False)
    app.conf.update(
        broker_url=f"{redis_server.url}/1",
        result_backend=f"{redis_server.url}/2",
        task_acks_late=True,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        result_expires=600,
    )
    register(app)
    return app


@pytest.fixture(scope="session")
def celery_test_worker(celery_test_app: Celery) -> Iterator[Celery]:
    with start_worker(
        celery_test_app, pool="threads", concurrency=4, perform_ping_check=False, loglevel="WARNING"
    ):
        yield celery_test_app


@pytest.fixture
def worker(celery_test_worker: Celery, redis_url: str) -> Iterator[Celery]:
    """The running worker, with progress reporting into the session's Redis."""
    progress.configure(progress_settings(redis_url))
    yield celery_test_worker
    progress.configure(None)


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisEventStore]:
    client = connect(redis_url)
    yield RedisEventStore(client)
    client.close()


EventsOf = Callable[..., list[dict]]


@pytest.fixture
def events_of(store: RedisEventStore) -> EventsOf:
    """Read a user's stream as dicts, waiting (bounded) until ``until`` holds for them."""

    def read(
        user_id: str, until: Callable[[list[dict]], bool] = lambda _: True, timeout: float = 10
    ) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            events = [
                orjson.loads(item.data)
                for item in store.read_after(user_stream(user_id), "0-0", 10_000)
            ]
            if until(events) or time.monotonic() > deadline:
                return events
            time.sleep(0.05)

    return read


def types(events: list[dict], *, skip: frozenset[str] = frozenset()) -> list[str]:
    """The event types in order, without those in ``skip``."""
    return [e["type"] for e in events if e["type"] not in skip]


def has(kind: str, count: int = 1) -> Callable[[list[dict]], bool]:
    """Wait condition: at least ``count`` events of type ``kind``."""
    return lambda events: sum(e["type"] == kind for e in events) >= count


@dataclass
class WorkerStack:
    """Worker processes on the session's Redis with their own SQLite database and broker
    databases; this test process sends tasks (``workers.contracts``) and reads the events."""

    env: dict[str, str]
    store: RedisEventStore
    started: list[WorkerProcess] = field(default_factory=list)

    def worker(
        self, pool: str = "threads", concurrency: int = 2, beat: bool = False, **env: str
    ) -> WorkerProcess:
        """Start a worker process (stopped at the end of the test, or by ``with``)."""
        worker = WorkerProcess({**self.env, **env}, concurrency, beat, pool).start()
        self.started.append(worker)
        return worker

    def events(
        self, user_id: str, until: Callable[[list[dict]], bool] = lambda _: True, timeout: float = 0
    ) -> list[dict]:
        """The user's stored events, waiting (bounded) until ``until`` holds for them."""
        deadline = time.monotonic() + timeout
        while True:
            found = [
                orjson.loads(e.data)
                for e in self.store.read_after(user_stream(user_id), "0-0", 10_000)
            ]
            if until(found) or time.monotonic() > deadline:
                return found
            time.sleep(0.1)


MakeWorkerStack = Callable[..., WorkerStack]


@pytest.fixture
def worker_stack(redis_server: RedisServer, tmp_path: Path) -> Iterator[MakeWorkerStack]:
    """``worker_stack(broker_db, result_db, **env)``: a migrated database, this process
    configured to send tasks to the stack, and every started worker stopped afterwards."""
    stacks: list[WorkerStack] = []

    def make(broker_db: int, result_db: int, **env: str) -> WorkerStack:
        database = f"sqlite:///{tmp_path / f'novels-{broker_db}.db'}"
        upgrade(database)
        redis_url = f"{redis_server.url}/0"
        resources.configure(
            WorkerSettings(
                redis_url=redis_url,
                database_url=database,
                broker_db=broker_db,
                result_db=result_db,
            )
        )
        progress.configure(ProgressSettings(redis_url=redis_url))
        base = {
            "REDIS_URL": redis_url,
            "DATABASE_URL": database,
            "WORKER_BROKER_DB": str(broker_db),
            "WORKER_RESULT_DB": str(result_db),
        }
        stack = WorkerStack({**base, **env}, RedisEventStore(connect(redis_url)))
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        for worker in stack.started:
            worker.close()
        stack.store.close()
    progress.configure(None)
    resources.configure(None)


@contextmanager
def api_and_workers(
    redis_server: RedisServer,
    database: Path,
    broker_db: int,
    result_db: int,
    env: dict[str, str],
    workers: int = 1,
    concurrency: int = 2,
) -> Iterator[ApiServer]:
    """The API and ``workers`` worker processes on a migrated SQLite ``database``, this process
    configured to send their tasks; everything stopped and unconfigured afterwards."""
    url = f"sqlite:///{database}"
    upgrade(url)
    redis_url = f"{redis_server.url}/0"
    shared = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": url,
        "WORKER_BROKER_DB": str(broker_db),
        "WORKER_RESULT_DB": str(result_db),
        **env,
    }
    resources.configure(
        WorkerSettings(
            redis_url=redis_url, database_url=url, broker_db=broker_db, result_db=result_db
        )
    )
    progress.configure(ProgressSettings(redis_url=redis_url))
    try:
        with ApiServer(redis_url, SSE_HEARTBEAT_SECONDS="5", **shared) as api, ExitStack() as stack:
            for _ in range(workers):
                stack.enter_context(WorkerProcess(shared, concurrency=concurrency))
            yield api
    finally:
        progress.configure(None)
        resources.configure(None)
