"""Issue 2: the in-memory and the Redis store keep the same contract (one suite, both)."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from progress.events import NovelCreated, SystemNotification, TaskStarted, TaskUpdated
from progress.keys import BROADCAST, user_stream
from progress.redis_store import RedisEventStore, connect
from progress.store import MemoryEventStore, StoreSettings

pytestmark = pytest.mark.integration

Store = MemoryEventStore | RedisEventStore


@pytest.fixture(params=["memory", "redis", "cluster"])
def store(request: pytest.FixtureRequest, redis_url: str) -> Iterator[Store]:
    """The in-memory store, the store on one Redis, and on a real Redis Cluster (issue 18)."""
    if request.param == "memory":
        yield MemoryEventStore()
        return
    if request.param == "cluster":
        redis_url = request.getfixturevalue("redis_cluster").url
    client = connect(redis_url)
    yield RedisEventStore(client)
    client.close()


def test_events_are_read_back_in_order_after_a_cursor(store: Store, user_id: str) -> None:
    stored = store.append_many(
        [(TaskUpdated(user_id=user_id, task_id="t", percent=p), ()) for p in range(10)]
    )
    ids = [s.id for s in stored]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))

    after = store.read_after(user_stream(user_id), ids[3], 100)

    assert [a.id for a in after] == ids[4:]
    assert [a.data for a in after] == [s.data for s in stored[4:]]
    assert store.read_after(user_stream(user_id), ids[3], 2) == after[:2]


def test_event_for_several_users_is_written_to_each_stream(store: Store, user_id: str) -> None:
    member = f"{user_id}-member"
    event = NovelCreated(user_id=user_id, novel_id="n1", title="Tide")

    stored = store.append(event, [member, user_id])

    assert [s.stream for s in stored] == [user_stream(user_id), user_stream(member)]
    assert len(store.read_after(user_stream(member), "0-0", 10)) == 1


def test_other_users_streams_stay_empty(store: Store, user_id: str) -> None:
    store.append(TaskUpdated(user_id=user_id, task_id="t", percent=1))
    assert store.read_after(user_stream(f"{user_id}-x"), "0-0", 10) == []


def test_broadcast_events_go_to_the_broadcast_stream(store: Store) -> None:
    event = SystemNotification(audience="broadcast", level="info", message="hello")
    stored = store.append(event)
    assert [s.stream for s in stored] == [BROADCAST]


def test_stream_state_keeps_one_epoch_and_the_last_id(store: Store, user_id: str) -> None:
    stream = user_stream(user_id)
    empty = store.stream_state(stream)
    stored = store.append(TaskUpdated(user_id=user_id, task_id="t", percent=1))

    state = store.stream_state(stream)

    assert empty.last_id == "0-0"
    assert state.epoch == empty.epoch == stored[0].epoch
    assert state.last_id == stored[0].id
    assert state.trimmed_before is None


def test_task_snapshot_follows_the_task(store: Store, user_id: str) -> None:
    store.append(TaskStarted(user_id=user_id, task_id="t1", task_name="outline"))
    store.append(TaskUpdated(user_id=user_id, task_id="t1", percent=40, message="scene 2"))

    snapshot = store.task_snapshot(user_id, "t1")

    assert snapshot is not None
    assert (snapshot.status, snapshot.percent, snapshot.message) == ("running", 40, "scene 2")
    assert snapshot.task_name == "outline"
    assert store.task_snapshot(f"{user_id}-x", "t1") is None
    assert [s.task_id for s in store.recent_tasks(user_id)] == ["t1"]


def test_an_important_event_pushed_twice_is_stored_and_published_once(
    store: Store, user_id: str
) -> None:
    member = f"{user_id}-member"
    event = NovelCreated(user_id=user_id, novel_id="n1", title="Tide")

    first = store.append(event, [member])
    again = store.append(event, [member])

    assert all(s.id for s in first)
    assert [s.id for s in again] == ["", ""]
    for reader in (user_id, member):
        assert len(store.read_after(user_stream(reader), "0-0", 10)) == 1


def test_unimportant_events_are_never_deduplicated(store: Store, user_id: str) -> None:
    update = TaskUpdated(user_id=user_id, task_id="t", percent=5)

    store.append_many([(update, ()), (update, ())])

    assert len(store.read_after(user_stream(user_id), "0-0", 10)) == 2


@pytest.mark.parametrize("streams_per_call", [1, 2, 64])
def test_a_batch_for_many_users_reaches_each_users_stream_and_snapshot(
    redis_url: str, user_id: str, streams_per_call: int
) -> None:
    client = connect(redis_url)
    store = RedisEventStore(client, StoreSettings(streams_per_call=streams_per_call))
    users = [f"{user_id}-{n}" for n in range(5)]
    batch = [
        (TaskUpdated(user_id=user, task_id="t", percent=percent, message=user), ())
        for percent in (10, 20)
        for user in users
    ]

    stored = store.append_many(batch)

    assert [s.stream for s in stored] == [user_stream(event.user_id or "") for event, _ in batch]
    for user in users:
        history = store.read_after(user_stream(user), "0-0", 10)
        events = [orjson.loads(entry.data) for entry in history]
        assert [(e["percent"], e["message"]) for e in events] == [(10, user), (20, user)]
        snapshot = store.task_snapshot(user, "t")
        assert snapshot is not None and (snapshot.percent, snapshot.message) == (20, user)
    client.close()
