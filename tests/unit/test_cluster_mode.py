"""Issue 18: Redis Cluster mode's pure parts: the URL, one slot per script call, sharded
subscriptions grouped per master and per slot."""

from __future__ import annotations

import asyncio

import pytest
from redis.crc import key_slot

from api.hub.pubsub_link import PubSubLink
from api.hub.sharded_link import ShardedLink, link_address, node_of
from progress.events import TaskUpdated
from progress.keys import BROADCAST, KeyLayout, user_stream
from progress.redis_cluster import ClusterUrl, is_cluster_url
from progress.redis_store import (
    APPEND_LUA,
    APPEND_SHARDED_LUA,
    append_calls,
    group_by_stream,
)
from progress.store import StoreSettings

pytestmark = pytest.mark.unit

LAYOUT = KeyLayout()


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        ("redis+cluster://10.0.0.1:7000", ClusterUrl((("10.0.0.1", 7000),))),
        (
            "redis+cluster://a:7000,b:7001,[::1]:7002",
            ClusterUrl((("a", 7000), ("b", 7001), ("::1", 7002))),
        ),
        ("redis+cluster://:p%40ss@a:1", ClusterUrl((("a", 1),), None, "p@ss")),
        ("redis+cluster://hub:pw@a:1,b:2/0", ClusterUrl((("a", 1), ("b", 2)), "hub", "pw")),
    ],
)
def test_cluster_urls(url: str, parsed: ClusterUrl) -> None:
    assert is_cluster_url(url)
    assert ClusterUrl.parse(url) == parsed
    assert link_address(url) == parsed


@pytest.mark.parametrize(
    "url", ["redis://a:1", "redis+cluster://", "redis+cluster://a", "redis+cluster://a:1?x=1"]
)
def test_bad_cluster_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        ClusterUrl.parse(url)


def test_plain_urls_stay_single_redis() -> None:
    assert not is_cluster_url("redis://127.0.0.1:6379/0")
    assert not isinstance(link_address("redis://127.0.0.1:6379/0"), ClusterUrl)


def test_the_sharded_append_script_publishes_on_the_shard_only() -> None:
    assert "redis.call('SPUBLISH'" in APPEND_SHARDED_LUA
    assert "redis.call('PUBLISH'" not in APPEND_SHARDED_LUA
    assert APPEND_SHARDED_LUA.replace("SPUBLISH", "PUBLISH") == APPEND_LUA


def test_each_append_call_touches_one_slot_with_its_channel() -> None:
    users = [f"user-{i}" for i in range(20)]
    batch = [
        (TaskUpdated(user_id=user, task_id=f"t-{user}", percent=5), [user, f"{user}-member"])
        for user in users
    ]
    streams, _ = group_by_stream(batch)
    calls = append_calls(streams, LAYOUT, StoreSettings(streams_per_call=1))
    assert len(calls) == len(streams)
    for keys, args in calls:
        channel = args[4]
        assert isinstance(channel, str)
        assert {key_slot(k.encode()) for k in [*keys, channel]} == {key_slot(keys[0].encode())}


@pytest.mark.parametrize(
    "keys",
    [
        # state.lua; lease_acquire (with the preferences read back), refresh, release.
        [LAYOUT.events(user_stream("7")), LAYOUT.meta(user_stream("7"))],
        [LAYOUT.leases("7"), LAYOUT.connection("7", "c"), LAYOUT.preferences("7")],
        # rate_bucket.lua (address bucket and ban; a user's bucket alone); ip_strike.lua.
        [LAYOUT.ip_bucket("10.1.2.3", "stream"), LAYOUT.ip_ban("10.1.2.3")],
        [LAYOUT.user_bucket("7", "stream")],
        [LAYOUT.ip_strikes("::1"), LAYOUT.ip_ban("::1")],
        # The broadcast stream's append and state.
        [LAYOUT.events(BROADCAST), LAYOUT.meta(BROADCAST), LAYOUT.seen(BROADCAST)],
    ],
)
def test_every_scripts_keys_share_one_slot(keys: list[str]) -> None:
    assert len({key_slot(key.encode()) for key in keys}) == 1


class FakeLink:
    """Records what a master's link was asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple[str, ...]]] = []

    def ssubscribe(self, *channels: str) -> None:
        self.sent.append(("SSUBSCRIBE", channels))

    def sunsubscribe(self, *channels: str) -> None:
        self.sent.append(("SUNSUBSCRIBE", channels))

    def subscribe(self, *channels: str) -> None:
        self.sent.append(("SUBSCRIBE", channels))

    def unsubscribe(self, *channels: str) -> None:
        self.sent.append(("UNSUBSCRIBE", channels))


SLOTS = [(0, 5460, ("h", 1)), (5461, 10922, ("h", 2)), (10923, 16383, ("h", 3))]


def sharded(links: dict[tuple[str, int], FakeLink]) -> ShardedLink:
    async def build() -> ShardedLink:
        typed: dict[tuple[str, int], PubSubLink] = links  # type: ignore[assignment]
        return ShardedLink(typed, SLOTS, frozenset({LAYOUT.control()}))

    return asyncio.run(build())


def test_channels_go_to_the_master_of_their_slot_one_command_per_slot() -> None:
    links = {node: FakeLink() for _, _, node in SLOTS}
    link = sharded(links)
    channels = [LAYOUT.channel(user_stream(f"u{i}")) for i in range(30)]

    link.subscribe(*channels, LAYOUT.control())

    for node, fake in links.items():
        for command, sent in fake.sent:
            if command == "SUBSCRIBE":
                assert sent == (LAYOUT.control(),)
                continue
            assert command == "SSUBSCRIBE"
            assert len({key_slot(c.encode()) for c in sent}) == 1
            assert {node_of(SLOTS, c) for c in sent} == {node}
    subscribed = [
        c for fake in links.values() for cmd, s in fake.sent if cmd != "SUBSCRIBE" for c in s
    ]
    assert sorted(subscribed) == sorted(channels)
    assert sum(cmd == "SUBSCRIBE" for fake in links.values() for cmd, _ in fake.sent) == 1


def test_an_unasked_sunsubscribe_means_the_slot_moved() -> None:
    links = {node: FakeLink() for _, _, node in SLOTS}
    link = sharded(links)
    mine, moved = LAYOUT.channel(user_stream("a")), LAYOUT.channel(user_stream("b"))
    delivered: list[list[list[bytes]]] = []

    link.unsubscribe(mine)
    link.on_replies([[b"sunsubscribe", mine.encode(), 0]], delivered.append)  # type: ignore[list-item]
    assert not link._moved.done()
    link.on_replies([[b"sunsubscribe", moved.encode(), 0]], delivered.append)  # type: ignore[list-item]
    assert link._moved.done()
    assert len(delivered) == 2
