"""A user's channel outlives their last stream briefly, so a quick reconnect needs no
SUBSCRIBE; what was published meanwhile reaches them through the resume."""

from __future__ import annotations

import time

import redis

from progress.events import TaskUpdated
from progress.keys import KeyLayout, user_stream
from progress.redis_store import RedisEventStore
from tests.integration.test_sse_faults import api_server
from tests.integration.test_sse_stream import open_stream, updates


def subscribers(redis_url: str, user: str) -> int:
    channel = KeyLayout().channel(user_stream(user))
    client = redis.Redis.from_url(redis_url)
    try:
        return int(dict(client.pubsub_numsub(channel))[channel.encode()])
    finally:
        client.close()


def test_a_reconnect_within_the_linger_finds_the_channel_and_misses_nothing(
    redis_url: str, store: RedisEventStore, user_id: str
) -> None:
    with api_server(redis_url, SSE_SUBSCRIPTION_LINGER_SECONDS="1.5") as api:
        first = open_stream(api, api.jwt(user_id))
        store.append(TaskUpdated(user_id=user_id, task_id="t", percent=10))
        first.wait_for(lambda events: updates(events) == [10])
        cursor = first.last_id
        first.close()
        time.sleep(0.3)
        assert subscribers(redis_url, user_id) == 1  # still subscribed: no stream, lingering
        store.append(TaskUpdated(user_id=user_id, task_id="t", percent=20))
        again = open_stream(api, api.jwt(user_id), cursor)
        try:
            store.append(TaskUpdated(user_id=user_id, task_id="t", percent=30))
            again.wait_for(lambda events: updates(events) == [20, 30])
        finally:
            again.close()
        deadline = time.monotonic() + 5
        while subscribers(redis_url, user_id) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert subscribers(redis_url, user_id) == 0  # unsubscribed once the linger ran out
