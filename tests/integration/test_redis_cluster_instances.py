"""Issue 18: three API instances on a Redis Cluster behind the shipped nginx front; one is
SIGKILLed while events flow. Its clients reconnect through nginx to the others and resume from
their cursors: nothing lost, duplicated or reordered. A broadcast reaches every stream."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Iterator

import pytest

from progress.events import SystemNotification
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
from tests.integration.test_redis_cluster_reshard import Writer
from tests.nginx_server import NginxProxy
from tests.redis_cluster import RedisCluster
from tests.servers import ApiServer

pytestmark = pytest.mark.integration
log = logging.getLogger("tests.cluster")


@pytest.fixture
def front(redis_cluster: RedisCluster) -> Iterator[tuple[NginxProxy, list[ApiServer]]]:
    apis = [api.start() for api in cluster_apis(redis_cluster, 3, **NO_BACKPRESSURE)]
    upstream = ",".join(f"127.0.0.1:{api.port}" for api in apis)
    try:
        with NginxProxy(upstream, shipped=True) as nginx:
            yield nginx, apis
    finally:
        for api in apis:
            api.close()


def test_a_killed_instances_clients_resume_through_nginx_on_the_others(
    redis_cluster: RedisCluster, front: tuple[NginxProxy, list[ApiServer]]
) -> None:
    nginx, apis = front
    users = users_on_every_master(redis_cluster, per_master=4)
    tabs = [Tab(user, dev_jwt(nginx.url, user), [nginx.url]).start() for user in users]
    for tab in tabs:
        assert tab.wait_open(20), dict(tab.refusals)
    writer = Writer(redis_cluster.url, users)
    writer.start()
    store = RedisEventStore(connect(redis_cluster.url))
    try:
        deadline = time.monotonic() + 10
        while writer.rounds < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        apis[0].stop(signal.SIGKILL)
        killed_at, rounds_at_kill = time.monotonic(), writer.rounds
        deadline = killed_at + 20
        while writer.rounds < rounds_at_kill + 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        store.append(SystemNotification(audience="broadcast", level="info", message="hi all"))
    finally:
        writer.stopping.set()
        writer.join(10)
    try:
        counts = counted_in(writer.store, tabs, timeout=30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(
            t.of_type("system.notification") for t in tabs
        ):
            time.sleep(0.05)
        broadcast = sum(1 for t in tabs if t.of_type("system.notification"))
    finally:
        for tab in tabs:
            tab.stop()
        writer.store.close()
        store.close()
    summary = total(counts)
    report = (
        f"3 instances behind nginx, one SIGKILLed: {len(tabs)} streams, {writer.rounds} rounds; "
        f"{summary}; {reconnects(tabs)}; "
        f"broadcast reached {broadcast}/{len(tabs)}"
    )
    log.warning(report)
    assert sum(t.attempts - 1 for t in tabs) > 0, "some stream was on the killed instance"
    assert (summary.lost, summary.duplicated, summary.out_of_order, summary.foreign) == (
        0,
        0,
        0,
        0,
    ), report
    assert broadcast == len(tabs), report
