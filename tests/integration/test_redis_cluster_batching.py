"""Issue 18 item 3: the API's command client on a cluster auto-pipelines per master
(api/hub/cluster_batching.py), on a real cluster: a burst for users on every master on a few
connections, ``ASK`` while a slot migrates and ``MOVED`` after it moved, and a master SIGKILLed
(its replica takes over; the same client answers again, scripts loaded on the new master).

The module's tests share one cluster and run in file order: the failover comes last.
"""

from __future__ import annotations

import asyncio
import functools
import time

import pytest
import redis
from redis.crc import key_slot

from api.hub.cluster_batching import ClusterBatchingRedis
from progress.keys import KeyLayout, user_stream
from progress.redis_cluster import connect_cluster_async
from tests.integration.test_redis_cluster import users_on_every_master
from tests.redis_cluster import RedisCluster, RedisClusterNode

pytestmark = pytest.mark.integration

#: Counts a GET, a SET and a script call per user; the script reads the key it writes.
INCR_LUA = "return redis.call('INCRBY', KEYS[1], ARGV[1])"


def client_of(cluster: RedisCluster, name: str, connections: int = 3) -> ClusterBatchingRedis:
    client = connect_cluster_async(
        cluster.url,
        functools.partial(ClusterBatchingRedis, node_connections=connections),
        client_name=name,
        decode_responses=True,
    )
    assert isinstance(client, ClusterBatchingRedis)
    return client


def key_of(user: str) -> str:
    """A key in the user's slot (the tag of the user's stream)."""
    return KeyLayout().events(user_stream(user)).replace(":events", ":test")


def named_connections(node: RedisClusterNode, name: str) -> int:
    clients = node.client().client_list()
    return sum(1 for entry in clients if entry.get("name") == name)


def test_a_burst_on_every_master_is_answered_on_few_connections(
    redis_cluster: RedisCluster,
) -> None:
    users = users_on_every_master(redis_cluster, per_master=4)
    per_user = 200  # 2,400 users' commands of each kind at once

    async def burst() -> tuple[list[object], list[object], dict[int, int]]:
        client = client_of(redis_cluster, "cb-burst")
        script = client.register_script(INCR_LUA)
        try:
            keys = [f"{key_of(user)}:{i}" for user in users for i in range(per_user)]
            assert await client.ping() is True
            written = await asyncio.gather(*(client.set(key, key) for key in keys))
            counted = await asyncio.gather(*(script([key + ":n"], [3]) for key in keys))
            read = await asyncio.gather(*(client.get(key) for key in keys))
            assert written == [True] * len(keys)
            assert counted == [3] * len(keys)
            connections = {
                node.port: named_connections(node, "cb-burst") for node in redis_cluster.masters()
            }
            return read, list(keys), connections
        finally:
            await client.aclose()

    read, keys, connections = asyncio.run(burst())
    assert read == keys
    assert len(connections) == 3
    # Each master was used, on at most its batching pool (3); the inherited cluster client
    # opened none (nothing here is keyless or pipelined).
    assert all(1 <= count <= 3 for count in connections.values()), connections
    print(f"burst: connections per master {sorted(connections.values())}")  # noqa: T201


def test_a_multi_key_command_across_slots_is_refused(redis_cluster: RedisCluster) -> None:
    first, second = users_on_every_master(redis_cluster)[:2]

    async def run() -> None:
        client = client_of(redis_cluster, "cb-crossslot")
        try:
            await client.set(key_of(first), "1")
            same_slot = [key_of(first), key_of(first) + ":other"]
            assert await client.execute_command("DEL", *same_slot) == 1
            with pytest.raises(redis.exceptions.ClusterCrossSlotError):
                await client.execute_command("DEL", key_of(first), key_of(second))
        finally:
            await client.aclose()

    asyncio.run(run())


def test_ask_while_a_slot_migrates_and_moved_after_it_moved(redis_cluster: RedisCluster) -> None:
    user = users_on_every_master(redis_cluster)[0]
    key = key_of(user) + ":moving"
    slot = key_slot(key.encode())
    source = redis_cluster.master_of(key)
    target = next(node for node in redis_cluster.masters() if node.port != source.port)
    source_id = source.client().execute_command("CLUSTER", "MYID")
    target_id = target.client().execute_command("CLUSTER", "MYID")

    async def run() -> int:
        client = client_of(redis_cluster, "cb-moves")
        try:
            await client.execute_command("DEL", key)  # reads the slot map; no key on the source
            refreshes = client.refreshes
            target.client().execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
            source.client().execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
            # The source answers ASK for a key it does not hold: ASKING + SET on the target.
            assert await client.set(key, "moved") is True
            assert await client.get(key) == "moved"
            assert client.refreshes == refreshes  # ASK does not change the map
            for node in (target, source, *redis_cluster.masters()):  # replicas learn by gossip
                node.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
            # The source now answers MOVED: the command follows it and the map is read again.
            assert await client.get(key) == "moved"
            assert await client.incr(key + ":n") == 1
            await asyncio.sleep(0.05)
            return client.refreshes - refreshes
        finally:
            await client.aclose()

    assert asyncio.run(run()) >= 1
    redis_cluster.wait_ok()
    assert redis_cluster.master_of(key).port == target.port


def test_a_reshard_is_followed(redis_cluster: RedisCluster) -> None:
    source = redis_cluster.masters()[0]
    target = redis_cluster.masters()[1]
    moving = redis_cluster.first_slots(source, 20)
    layout = KeyLayout()
    users: list[str] = []
    while len(users) < 5:
        user = f"user-r{len(users)}-{time.monotonic_ns()}"
        if key_slot(layout.events(user_stream(user)).encode()) in moving:
            users.append(user)

    async def run() -> tuple[list[str | None], int]:
        client = client_of(redis_cluster, "cb-reshard")
        try:
            await asyncio.gather(*(client.set(key_of(user), user) for user in users))
            before = client.refreshes
            await asyncio.to_thread(redis_cluster.reshard, source, target, len(moving))
            read = await asyncio.gather(*(client.get(key_of(user)) for user in users))
            await asyncio.sleep(0.05)
            return read, client.refreshes - before
        finally:
            await client.aclose()

    read, refreshes = asyncio.run(run())
    assert read == users
    assert refreshes >= 1
    assert {redis_cluster.master_of(key_of(user)).port for user in users} == {target.port}


def test_a_failover_is_recovered_from(redis_cluster: RedisCluster) -> None:
    users = users_on_every_master(redis_cluster)
    victim = redis_cluster.master_of(key_of(users[0]))

    async def run() -> tuple[list[str | None], float]:
        client = client_of(redis_cluster, "cb-failover")
        script = client.register_script(INCR_LUA)
        try:
            await asyncio.gather(*(client.set(key_of(user), user) for user in users))
            assert await script([key_of(users[0]) + ":n"], [1]) == 1
            victim.client().execute_command("WAIT", 1, 2000)
            victim.kill()
            killed = time.monotonic()
            # Before the replica is promoted: the other masters answer, so the health probe
            # still finds Redis up (one lost shard must not refuse every user's opens).
            assert await asyncio.wait_for(client.ping(), 1.5) is True
            deadline = killed + 20
            while True:  # each call retries within its own bound; callers may call again
                try:
                    read = await asyncio.gather(*(client.get(key_of(user)) for user in users))
                    break
                except (redis.exceptions.ConnectionError, redis.exceptions.ClusterDownError):
                    assert time.monotonic() < deadline, "no answer 20 s after the kill"
            recovered = time.monotonic() - killed
            # The promoted replica never saw SCRIPT LOAD: NOSCRIPT loads it on every master.
            assert await script([key_of(users[0]) + ":n"], [1]) == 2
            assert await client.ping() is True
            return read, recovered
        finally:
            await client.aclose()

    read, recovered = asyncio.run(run())
    assert read == users
    assert redis_cluster.master_of(key_of(users[0])).port != victim.port
    print(f"failover: answered again {recovered:.1f} s after the kill")  # noqa: T201
