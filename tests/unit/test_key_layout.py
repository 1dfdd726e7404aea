"""The key layout builds exactly the names the stores used before it was the one source: keys
already in Redis (streams, leases, buckets, preferences, spent tokens) must keep working
without a migration, so every name is pinned here byte for byte."""

from __future__ import annotations

import inspect

import pytest

from progress.keys import BROADCAST, KeyLayout, user_of_stream, user_stream

LAYOUT = KeyLayout("rt")
USER = user_stream("42")

#: Every method of the layout, called with sample ids, and the exact name it must give.
EXPECTED = {
    "events": (LAYOUT.events(USER), "rt:{u:42}:events"),
    "meta": (LAYOUT.meta(USER), "rt:{u:42}:meta"),
    "seen": (LAYOUT.seen(USER), "rt:{u:42}:seen"),
    "channel": (LAYOUT.channel(USER), "rt:{u:42}:live"),
    "task": (LAYOUT.task("42", "t-1"), "rt:{u:42}:task:t-1"),
    "tasks": (LAYOUT.tasks("42"), "rt:{u:42}:tasks"),
    "workflow": (LAYOUT.workflow("42", "w-1"), "rt:{u:42}:wf:w-1"),
    "workflow_running": (LAYOUT.workflow_running("42", "w-1"), "rt:{u:42}:wf:w-1:running"),
    "running": (LAYOUT.running(), "rt:running"),
    "readers": (LAYOUT.readers("n-7"), "rt:{n:n-7}:readers"),
    "control": (LAYOUT.control(), "rt:control"),
    "realtime_mode": (LAYOUT.realtime_mode(), "rt:realtime"),
    "instances": (LAYOUT.instances(), "rt:instances"),
    "cancel": (LAYOUT.cancel("t-1"), "rt:cancel:t-1"),
    "journal_pending": (LAYOUT.journal_pending(), "rt:journal-pending"),
    "all_events": (LAYOUT.all_events(), "rt:{*}:events"),
    "leases": (LAYOUT.leases("42"), "rt:{u:42}:conns"),
    "connection": (LAYOUT.connection("42", "c-9"), "rt:{u:42}:conn:c-9"),
    "sse_token": (LAYOUT.sse_token("d1g3st"), "rt:sse-token:d1g3st"),
    "preferences": (LAYOUT.preferences("42"), "rt:{u:42}:prefs"),
    "user_bucket": (LAYOUT.user_bucket("42", "stream"), "rt:{u:42}:rl:stream"),
    "ip_bucket": (LAYOUT.ip_bucket("10.0.0.1", "sse_token"), "rt:{ip:10.0.0.1}:rl:sse_token"),
    "ip_strikes": (LAYOUT.ip_strikes("::1"), "rt:{ip:::1}:strikes"),
    "ip_ban": (LAYOUT.ip_ban("::1"), "rt:{ip:::1}:ban"),
    "outage": (LAYOUT.outage("llm"), "rt:{dep:llm}:outage"),
    "dependency_failures": (LAYOUT.dependency_failures("llm"), "rt:{dep:llm}:failures"),
    "dependency_failing_users": (
        LAYOUT.dependency_failing_users("llm"),
        "rt:{dep:llm}:failing-users",
    ),
    "outage_notified": (LAYOUT.outage_notified("database"), "rt:{dep:database}:notified"),
}

#: Methods that map names back rather than build one.
INVERSES = {"stream_of_channel"}


@pytest.mark.parametrize("method", sorted(EXPECTED))
def test_each_name_is_byte_for_byte_what_redis_already_holds(method: str) -> None:
    built, expected = EXPECTED[method]
    assert built == expected


def test_every_method_of_the_layout_is_pinned() -> None:
    methods = {
        name
        for name, _ in inspect.getmembers(KeyLayout, inspect.isfunction)
        if not name.startswith("_")
    }
    assert methods - INVERSES == set(EXPECTED), "pin the name a new layout method builds here"


def test_broadcast_keys_use_the_broadcast_tag() -> None:
    assert LAYOUT.events(BROADCAST) == "rt:{b}:events"
    assert LAYOUT.channel(BROADCAST) == "rt:{b}:live"


def test_the_prefix_starts_every_name() -> None:
    layout = KeyLayout("claims")
    assert layout.leases("42") == "claims:{u:42}:conns"
    assert layout.ip_ban("::1") == "claims:{ip:::1}:ban"
    assert layout.all_events() == "claims:{*}:events"


def test_a_channel_maps_back_to_its_stream() -> None:
    for stream in (USER, BROADCAST):
        assert KeyLayout("claims").stream_of_channel(KeyLayout("claims").channel(stream)) == stream
    assert user_of_stream(USER) == "42"
    assert user_of_stream(BROADCAST) is None


def test_every_key_of_a_user_carries_the_users_hash_tag() -> None:
    """A script may touch one Redis Cluster slot: a user's keys must share ``{u:<user>}``."""
    for name, method in inspect.getmembers(KeyLayout, inspect.isfunction):
        parameters = list(inspect.signature(method).parameters)[1:]
        if parameters[:1] == ["user_id"]:
            key = method(LAYOUT, "42", *parameters[1:])
            assert key.startswith("rt:{u:42}:"), name
