"""Issue 18: move slots between masters (``redis-cli --cluster reshard``) while streams are
open on two API instances and events flow into the moving slots.

Redis 7 tells the old master's shard subscribers that the slot left (``sunsubscribe``); the
API's sharded link takes that for a lost link, reads the slot map again, subscribes on the new
master and every stream catches up from its cursor. Writers follow ``MOVED`` / ``ASK`` through
redis-py's cluster client. Nothing may be lost, duplicated or reordered.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from redis.crc import key_slot

from progress.events import TaskUpdated
from progress.keys import KeyLayout, user_stream
from progress.redis_store import RedisEventStore, connect
from tests.chaos.users import Tab, dev_jwt
from tests.integration.test_redis_cluster import (
    NO_BACKPRESSURE,
    cluster_apis,
    counted_in,
    reconnects,
    total,
    users_on_every_master,
)
from tests.redis_cluster import RedisCluster
from tests.servers import ApiServer

pytestmark = pytest.mark.integration
log = logging.getLogger("tests.cluster")

MOVED_SLOTS = 200


def user_in(slots: range) -> str:
    """A fresh user id whose stream hashes into ``slots``."""
    layout = KeyLayout()
    while True:
        user = f"user-{uuid.uuid4().hex[:12]}"
        if key_slot(layout.events(user_stream(user)).encode()) in slots:
            return user


@pytest.fixture
def apis(redis_cluster: RedisCluster) -> Iterator[list[ApiServer]]:
    servers = [api.start() for api in cluster_apis(redis_cluster, **NO_BACKPRESSURE)]
    yield servers
    for api in servers:
        api.close()


class Writer(threading.Thread):
    """Appends a numbered progress update for every user, round after round, until stopped;
    a failed append (a slot in flight) is retried, so every number is stored once."""

    def __init__(self, url: str, users: list[str]) -> None:
        super().__init__(daemon=True)
        self.store = RedisEventStore(connect(url))
        self.users = users
        self.rounds = 0
        self.retries = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            batch = [
                (TaskUpdated(user_id=u, task_id="t", percent=self.rounds % 100), ())
                for u in self.users
            ]
            while True:
                try:
                    self.store.append_many(batch)
                    break
                except Exception:  # the store's retries are spent: try the batch again
                    self.retries += 1
                    time.sleep(0.05)
            self.rounds += 1
            time.sleep(0.02)


def test_streams_lose_nothing_while_slots_move_between_masters(
    redis_cluster: RedisCluster, apis: list[ApiServer]
) -> None:
    masters = redis_cluster.masters()
    source, target = masters[0], masters[1]
    moving = [user_in(redis_cluster.first_slots(source, MOVED_SLOTS)) for _ in range(3)]
    users = moving + users_on_every_master(redis_cluster)
    tabs = [Tab(user, dev_jwt(api.url, user), [api.url]).start() for user in users for api in apis]
    for tab in tabs:
        assert tab.wait_open(20), dict(tab.refusals)
    writer = Writer(redis_cluster.url, users)
    writer.start()
    try:
        deadline = time.monotonic() + 10
        while writer.rounds < 10 and time.monotonic() < deadline:  # events flow before the move
            time.sleep(0.05)
        started = time.monotonic()
        redis_cluster.reshard(source, target, MOVED_SLOTS)
        moved_in = time.monotonic() - started
        layout = KeyLayout()
        assert all(redis_cluster.master_of(layout.events(user_stream(u))) is target for u in moving)
        rounds_at_move = writer.rounds
        deadline = time.monotonic() + 20
        while writer.rounds < rounds_at_move + 20 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        writer.stopping.set()
        writer.join(10)
    try:
        counts = counted_in(writer.store, tabs, timeout=30)
    finally:
        for tab in tabs:
            tab.stop()
        writer.store.close()
    summary = total(counts)
    report = (
        f"reshard: {MOVED_SLOTS} slots moved in {moved_in:.1f} s under {len(tabs)} streams; "
        f"{writer.rounds} rounds written ({writer.retries} retried); {summary}; "
        f"{reconnects(tabs)}"
    )
    log.warning(report)
    assert (summary.lost, summary.duplicated, summary.out_of_order, summary.foreign) == (
        0,
        0,
        0,
        0,
    ), report
    assert summary.received >= len(tabs) * writer.rounds, report
