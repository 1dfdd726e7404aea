"""Issue 8: streams resuming together share their broadcast replay reads
(api/stream/shared_replay.py)."""

from __future__ import annotations

import asyncio

import pytest
import redis

from api.stream.shared_replay import SharedReplayStore
from progress.events import SystemNotification
from progress.keys import BROADCAST
from progress.redis_store import RedisEventStore, connect, connect_async
from progress.store import StoreSettings

pytestmark = pytest.mark.integration

# A prefix of its own: broadcast events are in every user's history, and the Redis is shared.
SETTINGS = StoreSettings(key_prefix="replay-test")


def _notices(store: RedisEventStore, count: int) -> list[str]:
    batch = [
        (SystemNotification(audience="broadcast", level="info", message=f"n{i}"), ())
        for i in range(count)
    ]
    return [stored.id for stored in store.append_many(batch)]


def _xranges(monitor: redis.Redis) -> int:
    return int(monitor.info("commandstats").get("cmdstat_xrange", {}).get("calls", 0))


def test_a_thousand_simultaneous_resumes_read_the_broadcast_gap_once(redis_url: str) -> None:
    writer = RedisEventStore(connect(redis_url), SETTINGS)
    first, *missed = _notices(writer, 101)
    monitor = redis.Redis.from_url(redis_url)
    before = _xranges(monitor)

    async def resume_all() -> list[list[str]]:
        store = SharedReplayStore(connect_async(redis_url), SETTINGS)
        reads = (store.read_after(BROADCAST, first, 500) for _ in range(1000))
        pages = await asyncio.gather(*reads)
        await store.client.aclose()
        return [[event.id for event in page] for page in pages]

    pages = asyncio.run(resume_all())
    assert all(page == missed for page in pages)
    assert _xranges(monitor) - before == 1


def test_a_shared_page_is_a_prefix_and_what_came_later_is_read_after_it(redis_url: str) -> None:
    writer = RedisEventStore(connect(redis_url), SETTINGS)
    start, first = _notices(writer, 2)

    async def read() -> tuple[list[str], list[str], list[str]]:
        store = SharedReplayStore(connect_async(redis_url), SETTINGS, ttl=60)
        await store.read_after(BROADCAST, start, 500)  # the page [first] is now shared
        later = _notices(writer, 3)
        again = [e.id for e in await store.read_after(BROADCAST, start, 500)]
        rest = [e.id for e in await store.read_after(BROADCAST, again[-1], 500)]
        await store.client.aclose()
        return later, again, rest

    later, again, rest = asyncio.run(read())
    assert again == [first]  # the shared page: still exactly what follows ``start``, a prefix
    assert again + rest == [first, *later]  # reading on after it loses nothing
