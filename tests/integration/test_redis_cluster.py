"""Issue 18: the store, the API and real worker processes on a real Redis Cluster.

3 masters and 3 replicas (tests/redis_cluster.py); users picked so their hash tags land on
every master; two API instances on the cluster; Celery's broker on a plain Redis beside it.
Live events go through sharded pub/sub (SPUBLISH in the append script, SSUBSCRIBE per master
in the API's link).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import orjson
import pytest

import progress
from progress.events import TaskUpdated
from progress.keys import KeyLayout, user_stream
from progress.redis_server import RedisServer
from progress.redis_store import RedisEventStore, connect
from progress.settings import ProgressSettings
from tests.chaos.users import Tab
from tests.integration.test_realtime_mode import set_mode
from tests.integration.test_sse_stream import open_stream, updates
from tests.redis_cluster import RedisCluster
from tests.servers import ApiServer
from tests.sse_client import SseClient, SseEvent
from tests.workers import WorkerProcess
from workers import contracts, resources
from workers.migrate import upgrade
from workers.settings import WorkerSettings

pytestmark = pytest.mark.integration

#: Important events: never coalesced, never to be lost (progress updates may be coalesced).
IMPORTANT = ("task.progress-started", "task.progress-completed", "task.progress-failed")


def users_on_every_master(cluster: RedisCluster, per_master: int = 1) -> list[str]:
    """Fresh user ids, ``per_master`` whose stream lives on each master."""
    layout = KeyLayout()
    wanted = {node.port: per_master for node in cluster.masters()}
    users: list[str] = []
    while any(wanted.values()):
        user = f"user-{uuid.uuid4().hex[:12]}"
        port = cluster.master_of(layout.events(user_stream(user))).port
        if wanted[port]:
            wanted[port] -= 1
            users.append(user)
    return users


#: The relay's own correctness is under test: every event must arrive, none coalesced by
#: backpressure (which a loaded machine may trigger; the failover test keeps it on).
NO_BACKPRESSURE = {"SSE_BACKPRESSURE_ENABLED": "false"}


def cluster_apis(cluster: RedisCluster, count: int = 2, **env: str) -> list[ApiServer]:
    """API instances on the cluster (short heartbeats: quick closes, quick link checks)."""
    return [ApiServer(cluster.url, SSE_HEARTBEAT_SECONDS="1", **env) for _ in range(count)]


@dataclass
class Counts:
    """What one SSE stream received against what its user's stream holds."""

    stored: int
    received: int
    lost: int
    lost_important: int
    duplicated: int
    out_of_order: int
    foreign: int


def compare(stored: list[dict], received: list[dict], user: str) -> Counts:
    """Count lost, duplicated, out-of-order and foreign events of one stream."""
    order = {event["event_id"]: i for i, event in enumerate(stored)}
    ids = [event["event_id"] for event in received]
    seen = set(ids)
    positions = [order[i] for i in ids if i in order]
    important = {e["event_id"] for e in stored if e["type"] in IMPORTANT}
    return Counts(
        stored=len(stored),
        received=len(received),
        lost=len(set(order) - seen),
        lost_important=len(important - seen),
        duplicated=len(ids) - len(seen),
        out_of_order=sum(1 for a, b in zip(positions, positions[1:], strict=False) if b < a),
        foreign=sum(1 for e in received if e.get("user_id") not in (user, None)),
    )


def stored_events(store: RedisEventStore, user: str) -> list[dict]:
    """The user's stream as dicts, oldest first."""
    return [orjson.loads(e.data) for e in store.read_after(user_stream(user), "0-0", 100_000)]


def data_events(events: list[SseEvent]) -> list[dict]:
    """The stored events among SSE events (not the stream's own frames: established,
    heartbeat...)."""
    found = []
    for event in events:
        if event.id is None or not event.data.startswith("{"):
            continue
        body = event.json
        if "event_id" in body and "type" in body:
            found.append(body)
    return found


def received_events(stream: SseClient) -> list[dict]:
    """The stored events a stream delivered."""
    return data_events(list(stream.events))


def counted_in(store: RedisEventStore, tabs: list[Tab], timeout: float) -> list[Counts]:
    """Wait (bounded) until every tab holds every event of its user's stream; the counts."""
    deadline = time.monotonic() + timeout
    while True:
        counts = [
            compare(stored_events(store, t.user), data_events(t.all_events()), t.user) for t in tabs
        ]
        if all(c.lost == 0 for c in counts) or time.monotonic() > deadline:
            return counts
        time.sleep(0.2)


def total(counts: Iterable[Counts]) -> Counts:
    """The counts of several streams added up."""
    every = list(counts)
    return Counts(*(sum(getattr(c, f.name) for c in every) for f in fields(Counts)))


def reconnects(tabs: list[Tab]) -> str:
    """How often the tabs reconnected, and why an attempt was refused."""
    refused = sum((t.refusals for t in tabs), Counter())
    return f"reconnects: {sum(t.attempts - 1 for t in tabs)}; refusals: {dict(refused)}"


@dataclass
class ClusterStack:
    """A cluster, Celery's plain Redis, the database, and this process set up to send tasks."""

    cluster: RedisCluster
    env: dict[str, str]
    store: RedisEventStore

    def worker(self, concurrency: int = 4) -> WorkerProcess:
        """A real ``celery worker`` process reporting progress into the cluster."""
        return WorkerProcess(self.env, concurrency).start()


def make_stack(cluster: RedisCluster, celery: RedisServer, tmp: Path) -> ClusterStack:
    database = f"sqlite:///{tmp / 'novels.db'}"
    upgrade(database)
    env = {
        "REDIS_URL": cluster.url,
        "CELERY_REDIS_URL": f"{celery.url}/0",
        "DATABASE_URL": database,
        "WORKER_LOCAL_TOKENS_PER_SECOND": "150",
        "WORKER_TOKENS_PER_CHAPTER": "40",
        "PROGRESS_HEARTBEAT_SECONDS": "1",
        "PROGRESS_SEND_RETRY_SECONDS": "30",
    }
    resources.configure(
        WorkerSettings(
            redis_url=cluster.url, celery_redis_url=env["CELERY_REDIS_URL"], database_url=database
        )
    )
    progress.configure(ProgressSettings(redis_url=cluster.url, heartbeat_seconds=1))
    return ClusterStack(cluster, env, RedisEventStore(connect(cluster.url)))


def close_stack(stack: ClusterStack) -> None:
    stack.store.close()
    progress.configure(None)
    resources.configure(None)


@pytest.fixture(scope="module")
def celery_redis() -> Iterator[RedisServer]:
    """Celery's broker and result backend: a plain Redis (Celery does not support Cluster)."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def stack(
    redis_cluster: RedisCluster,
    celery_redis: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ClusterStack]:
    built = make_stack(redis_cluster, celery_redis, tmp_path_factory.mktemp("cluster"))
    yield built
    close_stack(built)


@pytest.fixture(scope="module")
def apis(redis_cluster: RedisCluster) -> Iterator[list[ApiServer]]:
    servers = [api.start() for api in cluster_apis(redis_cluster, **NO_BACKPRESSURE)]
    yield servers
    for api in servers:
        api.close()


def open_streams(apis: list[ApiServer], users: list[str]) -> dict[str, list[SseClient]]:
    """One stream per user on every instance."""
    return {user: [open_stream(api, api.jwt(user)) for api in apis] for user in users}


def close_streams(streams: dict[str, list[SseClient]]) -> None:
    for clients in streams.values():
        for client in clients:
            client.close()


def wait_delivered(
    store: RedisEventStore, streams: dict[str, list[SseClient]], timeout: float
) -> dict[str, list[Counts]]:
    """Wait (bounded) until every stream has every stored event of its user; the counts."""
    deadline = time.monotonic() + timeout
    while True:
        counts = {
            user: [compare(stored_events(store, user), received_events(s), user) for s in clients]
            for user, clients in streams.items()
        }
        if all(c.lost == 0 for per in counts.values() for c in per):
            return counts
        if time.monotonic() > deadline:
            return counts
        time.sleep(0.2)


def wait_novels_done(novels: dict[str, str], timeout: float) -> dict[str, str]:
    """Wait (bounded) until every novel (id -> owner) left the in-progress states."""
    deadline = time.monotonic() + timeout
    while True:
        status = {n: contracts.get_novel(n, owner).status for n, owner in novels.items()}
        if all(s in ("done", "failed", "cancelled") for s in status.values()):
            return status
        if time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def test_each_users_events_reach_their_streams_on_both_instances_and_nobody_else(
    redis_cluster: RedisCluster, apis: list[ApiServer], stack: ClusterStack
) -> None:
    users = users_on_every_master(redis_cluster)
    streams = open_streams(apis, users)
    try:
        # One batch for every user: one append call per stream, pipelined per node.
        stack.store.append_many(
            [
                (TaskUpdated(user_id=user, task_id="t", percent=10 * (i + 1)), ())
                for i, user in enumerate(users)
            ]
        )
        for i, user in enumerate(users):
            for stream in streams[user]:
                events = stream.wait_for(lambda events, i=i: 10 * (i + 1) in updates(events))
                assert updates(events) == [10 * (i + 1)], "the user's own event, once"
    finally:
        close_streams(streams)


def test_real_workers_events_reach_every_stream_of_their_user_on_every_shard(
    redis_cluster: RedisCluster, apis: list[ApiServer], stack: ClusterStack
) -> None:
    users = users_on_every_master(redis_cluster, per_master=2)
    streams = open_streams(apis, users)
    try:
        with stack.worker():
            novels = {
                contracts.start_novel(user, None, f"Tale of {user}", "A story", 2)[0].id: user
                for user in users
            }
            status = wait_novels_done(novels, timeout=90)
            assert set(status.values()) == {"done"}, status
            counts = wait_delivered(stack.store, streams, timeout=20)
    finally:
        close_streams(streams)
    for user, per_stream in counts.items():
        for count in per_stream:
            assert count.stored > 5, (user, count)
            assert (count.lost, count.duplicated, count.out_of_order, count.foreign) == (
                0,
                0,
                0,
                0,
            ), (user, count)


def test_a_mode_change_on_one_instance_reaches_the_streams_of_every_instance(
    redis_cluster: RedisCluster, apis: list[ApiServer]
) -> None:
    # The control channel stays plain PUBLISH/SUBSCRIBE on a cluster: every node delivers it.
    user = users_on_every_master(redis_cluster)[-1]
    streams = open_streams(apis, [user])
    try:
        assert set_mode(apis[0], "polling").status_code == 200
        for stream in streams[user]:
            events = stream.wait_for(lambda evs: any(e.event == "realtime.mode" for e in evs))
            assert [e.json["mode"] for e in events if e.event == "realtime.mode"] == ["polling"]
    finally:
        assert set_mode(apis[1], "sse").status_code == 200
        close_streams(streams)
