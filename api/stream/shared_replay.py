"""Replay reads of the broadcast stream, shared by the streams that resume at the same time.

After a deploy or a network blip thousands of clients reconnect at once, most of them with the
same broadcast cursor. Each used to read the same broadcast gap from Redis and parse it again
(5,000 streams x 100 events = 500,000 entries). Here concurrent and recent reads of the same
page (same ``after`` id and limit) share one ``XRANGE``.

Why sharing a page is safe: a page is the first entries after ``after``, oldest first, and a
stream only ever grows at its end, so a page read a moment ago is still a correct *prefix* of
what follows ``after``. The reader of a gap (``Connection._read_gap``) keeps reading after the
page's last id until it reaches the last id it read itself (fresh, after it subscribed), so a
shared page never hides a newer event. Empty pages are never shared (an empty page ends that
loop). Pages live ``ttl`` seconds, and only the broadcast stream's are kept: a user stream is
read by that user's few streams only.
"""

from __future__ import annotations

import asyncio

from progress.cursor import StreamState
from progress.keys import BROADCAST
from progress.redis_store import AsyncClient, AsyncRedisEventStore
from progress.store import StoredEvent, StoreSettings

_Key = tuple[str, int]


class SharedReplayStore(AsyncRedisEventStore):
    """``AsyncRedisEventStore`` whose broadcast ``read_after`` pages are shared briefly."""

    def __init__(
        self,
        client: AsyncClient,
        settings: StoreSettings | None = None,
        ttl: float = 1.0,
        size: int = 64,
    ) -> None:
        super().__init__(client, settings)
        self._ttl = ttl
        self._size = size
        self._pages: dict[_Key, tuple[float, list[StoredEvent]]] = {}
        self._reading: dict[_Key, asyncio.Task[list[StoredEvent]]] = {}
        #: The broadcast state read that callers may still join (not sent yet).
        self._next_state: asyncio.Task[StreamState] | None = None

    async def stream_state(self, stream: str) -> StreamState:
        """Like the store's; broadcast reads asked for in one loop turn are one call."""
        if stream != BROADCAST:
            return await super().stream_state(stream)
        read = self._next_state
        if read is None:
            read = asyncio.get_running_loop().create_task(self._read_state())
            self._next_state = read
        return await asyncio.shield(read)

    async def _read_state(self) -> StreamState:
        # Runs on the loop turn after the first caller's: later callers need a read of their own.
        self._next_state = None
        return await super().stream_state(BROADCAST)

    async def read_after(self, stream: str, after_id: str, limit: int) -> list[StoredEvent]:
        """Like the store's; broadcast pages read within ``ttl`` s are shared."""
        if stream != BROADCAST:
            return await super().read_after(stream, after_id, limit)
        key = (after_id, limit)
        loop = asyncio.get_running_loop()
        kept = self._pages.get(key)
        if kept is not None and loop.time() - kept[0] < self._ttl:
            return kept[1]
        reading = self._reading.get(key)
        if reading is None:
            reading = loop.create_task(self._read(key, loop.time()))
            self._reading[key] = reading
        return await asyncio.shield(reading)

    async def _read(self, key: _Key, started: float) -> list[StoredEvent]:
        try:
            page = await super().read_after(BROADCAST, key[0], key[1])
        finally:
            del self._reading[key]
        if page:
            if len(self._pages) >= self._size:
                oldest = min(self._pages, key=lambda k: self._pages[k][0])
                del self._pages[oldest]
            self._pages[key] = (started, page)
        return page
