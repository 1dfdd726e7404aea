"""A real Celery worker (in-process, threads pool) on the session's real Redis."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

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
