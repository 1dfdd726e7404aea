"""Issue 2: a Redis outage never fails a task; the append itself enforces retention."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from celery import Celery

import progress
from progress.events import TaskUpdated
from progress.keys import KeyLayout, user_stream
from progress.redis_server import RedisServer
from progress.redis_store import RedisEventStore, connect
from progress.store import StoreSettings
from tests.integration.conftest import progress_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def events_redis() -> Iterator[RedisServer]:
    """A Redis for events only, that the test may stop; the broker stays up."""
    with RedisServer() as server:
        yield server


def test_stopping_redis_during_a_task_does_not_fail_it(
    celery_test_worker: Celery, events_redis: RedisServer, user_id: str
) -> None:
    progress.configure(progress_settings(f"{events_redis.url}/0"))
    try:
        with progress.acting_as(user_id):
            result = celery_test_worker.tasks["t.fifty_updates"].delay()
        threading.Timer(0.5, events_redis.stop).start()
        assert result.get(timeout=20) == {"summary": "50 steps done"}
        assert result.status == "SUCCESS"
    finally:
        progress.configure(None)


def test_reporting_resumes_when_redis_returns(
    celery_test_worker: Celery, events_redis: RedisServer, user_id: str
) -> None:
    progress.configure(progress_settings(f"{events_redis.url}/0"))
    try:
        events_redis.stop()
        with progress.acting_as(user_id):
            celery_test_worker.tasks["t.step"].delay().get(timeout=20)
        events_redis.start()
        with progress.acting_as(user_id):
            result = celery_test_worker.tasks["t.step"].delay()
        result.get(timeout=20)
        store = RedisEventStore(connect(f"{events_redis.url}/0"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            stored = store.read_after(user_stream(user_id), "0-0", 100)
            after = [item.data for item in stored if result.id.encode() in item.data]
            if any(b"task.progress-completed" in data for data in after):
                break
            time.sleep(0.05)
        assert any(b"task.progress-started" in data for data in after)
        assert any(b"task.progress-completed" in data for data in after)
    finally:
        progress.configure(None)


def test_append_trims_events_older_than_the_retention_window(redis_url: str, user_id: str) -> None:
    client = connect(redis_url)
    store = RedisEventStore(client, StoreSettings(retention_seconds=2, max_stream_length=100_000))
    key = KeyLayout().events(user_stream(user_id))
    store.append_many([(TaskUpdated(user_id=user_id, task_id="t", percent=1), ())] * 300)
    time.sleep(1.0)
    store.append(TaskUpdated(user_id=user_id, task_id="t", percent=2))
    assert client.xlen(key) == 301
    time.sleep(1.1)

    store.append(TaskUpdated(user_id=user_id, task_id="t", percent=3))

    assert client.xlen(key) < 100, "whole nodes of old entries went with the append"
    state = store.stream_state(user_stream(user_id))
    assert state.trimmed_before is not None
    newest = store.read_after(user_stream(user_id), "0-0", 1000)
    assert b'"percent":3.0' in newest[-1].data


def test_idle_stream_expires_with_the_retention_window(redis_url: str, user_id: str) -> None:
    client = connect(redis_url)
    store = RedisEventStore(client, StoreSettings(retention_seconds=1))
    before = store.stream_state(user_stream(user_id))
    store.append(TaskUpdated(user_id=user_id, task_id="t", percent=1))
    time.sleep(1.2)

    after = store.stream_state(user_stream(user_id))

    assert client.exists(KeyLayout().events(user_stream(user_id))) == 0
    assert after.epoch != before.epoch, "a cursor into the expired history is detected"


def test_length_cap_keeps_the_newest_events(redis_url: str, user_id: str) -> None:
    client = connect(redis_url)
    store = RedisEventStore(client, StoreSettings(max_stream_length=100))
    store.append_many(
        [(TaskUpdated(user_id=user_id, task_id="t", percent=i / 10), ()) for i in range(1000)]
    )
    entries = store.read_after(user_stream(user_id), "0-0", 10_000)
    assert 100 <= len(entries) <= 200
    assert b'"percent":99.9' in entries[-1].data


def test_the_recent_tasks_index_forgets_tasks_past_the_retention_window(
    redis_url: str, user_id: str
) -> None:
    client = connect(redis_url)
    store = RedisEventStore(client, StoreSettings(retention_seconds=1))
    store.append(TaskUpdated(user_id=user_id, task_id="old", percent=1))
    time.sleep(1.1)

    store.append(TaskUpdated(user_id=user_id, task_id="new", percent=1))

    index = KeyLayout().tasks(user_id)
    assert client.zrange(index, 0, -1) == [b"new"], "the old task left the index"
    assert 0 < client.pttl(index) <= 1000, "the index expires with the retention window"
    assert [task.task_id for task in store.recent_tasks(user_id)] == ["new"]


def test_a_batch_is_stored_once_after_redis_forgot_its_scripts(
    redis_url: str, user_id: str
) -> None:
    client = connect(redis_url)
    store = RedisEventStore(client)
    store.append(TaskUpdated(user_id=user_id, task_id="t", percent=0))
    client.script_flush()  # what a Redis restart does to the script cache

    stored = store.append_many(
        [(TaskUpdated(user_id=user_id, task_id="t", percent=i), ()) for i in range(1, 6)]
    )

    assert all(item.id for item in stored)
    entries = store.read_after(user_stream(user_id), "0-0", 100)
    assert [item.id for item in entries[1:]] == [item.id for item in stored]
    assert store.task_snapshot(user_id, "t").percent == 5
