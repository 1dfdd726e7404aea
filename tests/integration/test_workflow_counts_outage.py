"""Issue 21, left out: counting that failed (Redis down) while a batch held events was logged,
not retried, so those tasks stayed "running" in their workflow forever. Now the pump retries
it on the path it retries events on (``PartlyStored`` → ``CountsPending`` markers), never
storing the events twice. Real Redis servers: the events' Redis stays up, the counts' Redis is
stopped before the batch and started again while the pump retries (a restarted Redis is
empty, as after a crash: the transitions alone must rebuild the task's state)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from progress.errors import PartlyStored
from progress.events import EventEnvelope, TaskCompleted, TaskStarted
from progress.keys import KeyLayout
from progress.pump import EventPump
from progress.redis_server import RedisServer
from progress.redis_store import RedisEventStore
from progress.store import StoreSettings
from progress.workflow import (
    CountsPending,
    QueuedTask,
    TaskQueued,
    Transition,
    WorkflowCounter,
    WorkflowWriter,
)

pytestmark = pytest.mark.integration

WORKFLOW = "wf1"


@pytest.fixture
def counts_redis() -> Iterator[RedisServer]:
    """The Redis of the workflow counts, which the test stops and starts."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:6]}"


@pytest.fixture
def store(redis_url: str, prefix: str) -> Iterator[RedisEventStore]:
    events = RedisEventStore(redis.Redis.from_url(redis_url), StoreSettings(key_prefix=prefix))
    yield events
    events.close()


def make_writer(redis_url: str, counts_url: str, prefix: str) -> WorkflowWriter:
    events = RedisEventStore(redis.Redis.from_url(redis_url), StoreSettings(key_prefix=prefix))
    counter = WorkflowCounter(
        lambda: redis.Redis.from_url(counts_url, socket_timeout=1, socket_connect_timeout=1),
        KeyLayout(prefix),
        600,
        0.0,
    )
    return WorkflowWriter(events, counter)


def a_task(user: str, task: str) -> list[EventEnvelope]:
    env = {"user_id": user, "workflow_id": WORKFLOW, "task_id": task}
    return [
        TaskQueued(user_id=user, workflow_id=WORKFLOW, tasks=[QueuedTask(task_id=task)]),
        TaskStarted(**env, task_name="x"),
        TaskCompleted(**env, duration_seconds=1),
    ]


def stored_types(store: RedisEventStore, user: str) -> list[str]:
    found = store.read_after(f"u:{user}", "0-0", 10_000)
    return [
        item.data.split(b'"type":"', 1)[1].split(b'"', 1)[0].decode()
        for item in found
        if b'"type":"' in item.data
    ]


@pytest.mark.parametrize("down_seconds", [0.5, 2.0], ids=["within-retry", "beyond-retry"])
def test_counting_that_failed_mid_batch_is_retried_and_the_events_stored_once(
    redis_url: str,
    counts_redis: RedisServer,
    store: RedisEventStore,
    prefix: str,
    user_id: str,
    down_seconds: float,
) -> None:
    counts_url = f"{counts_redis.url}/0"
    # Beyond the retry time, the pending counts go back to the queue's head, as events do.
    writer = lambda: make_writer(redis_url, counts_url, prefix)  # noqa: E731
    pump = EventPump(writer, lambda: None, retry_seconds=1.0)
    try:
        counts_redis.stop()
        for event in a_task(user_id, "t1") + a_task(user_id, "t2"):
            pump.submit(event)
        time.sleep(down_seconds)
        counts_redis.start()
        assert pump.flush(15)
    finally:
        pump.close()

    types = stored_types(store, user_id)
    assert types.count("task.progress-started") == 2, types  # stored once, not per retry
    assert types.count("task.progress-completed") == 2, types
    counter = WorkflowCounter(lambda: redis.Redis.from_url(counts_url), KeyLayout(prefix), 600, 0)
    try:
        tally = counter.snapshot(user_id, WORKFLOW)
    finally:
        counter.close()
    assert tally is not None
    assert (tally.total, tally.done, tally.running, tally.state) == (2, 2, [], "completed")
    assert pump.kept >= (1 if down_seconds > 1 else 0) and pump.dropped == 0


def test_pending_counts_applied_again_count_nothing_twice(
    redis_url: str, counts_redis: RedisServer, prefix: str, user_id: str
) -> None:
    writer = make_writer(redis_url, f"{counts_redis.url}/0", prefix)
    try:
        writer.append_many([(event, ()) for event in a_task(user_id, "t1")])
        again = CountsPending(
            user_id=user_id,
            workflow_id=WORKFLOW,
            transitions=[Transition("queued", "t1"), Transition("started", "t1")]
            + [Transition("completed", "t1")],
        )
        writer.append_many([(again, ()), (again, ())])
        assert writer.counter is not None
        tally = writer.counter.snapshot(user_id, WORKFLOW)
    finally:
        writer.close()
    assert tally is not None
    assert (tally.total, tally.done, tally.running, tally.state) == (1, 1, [], "completed")


def test_a_batch_stored_but_not_counted_says_what_is_left_to_send(
    redis_url: str,
    counts_redis: RedisServer,
    store: RedisEventStore,
    prefix: str,
    user_id: str,
) -> None:
    counts_redis.stop()
    writer = make_writer(redis_url, f"{counts_redis.url}/0", prefix)
    try:
        with pytest.raises(PartlyStored) as raised:
            writer.append_many([(event, ()) for event in a_task(user_id, "t1")])
    finally:
        writer.close()
    assert len(raised.value.stored) == 2  # the task's start and end, in the stream
    assert stored_types(store, user_id) == ["task.progress-started", "task.progress-completed"]
    [(pending, _)] = raised.value.pending
    assert isinstance(pending, CountsPending)
    assert [t.kind for t in pending.transitions] == ["queued", "started", "completed"]
