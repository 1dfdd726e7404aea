"""The pure routing of the cluster's batching client (api/hub/cluster_batching.py)."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from api.hub.cluster_batching import ATTEMPTS, backoff, routing_key, slot_of, slot_table


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (("GET", "rt:{u:1}:x"), "rt:{u:1}:x"),
        (("GETDEL", b"k"), b"k"),
        (("EVALSHA", "abc", 2, "rt:{u:1}:a", "rt:{u:1}:b", "arg"), "rt:{u:1}:a"),
        (("EVAL", "return 1", 0), None),
        (("evalsha", "abc", "1", "k"), "k"),
        (("XREAD", "COUNT", 10, "STREAMS", "s1", "s2", "0", "0"), "s1"),
        (("XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"), "s"),
        # as redis-py 8 sends them: the keyword as bytes
        (("XREAD", b"COUNT", 10, b"STREAMS", "s1", "0"), "s1"),
        (("XREADGROUP", b"GROUP", "streams", "c", b"STREAMS", "s", ">"), "s"),
        (("SCRIPT LOAD", "return 1"), None),
        (("XINFO STREAM", "s"), None),
        (("PING",), None),
        (("INFO", "memory"), None),
        (("ZUNION", 2, "a", "b"), None),
        (("PUBLISH", "rt:control", "m"), "rt:control"),
    ],
)
def test_routing_key(args: tuple[object, ...], key: object) -> None:
    assert routing_key(args) == key


def test_slot_of_follows_the_hash_tag() -> None:
    assert slot_of("rt:{u:7}:events") == slot_of(b"rt:{u:7}:conns") == key_slot(b"u:7")


def test_slot_table_maps_every_slot_of_each_range() -> None:
    table = slot_table([(0, 5460, ("a", 1)), (5461, 10922, ("b", 2)), (10924, 16383, ("c", 3))])
    assert len(table) == 16384
    assert table[0] == table[5460] == ("a", 1)
    assert table[5461] == ("b", 2)
    assert table[10923] is None
    assert table[16383] == ("c", 3)


def test_retries_span_a_failover() -> None:
    waits = [backoff(attempt) for attempt in range(ATTEMPTS - 1)]
    assert waits == sorted(waits)
    assert max(waits) <= 0.5
    assert sum(waits) >= 2.0
