"""How much memory the event streams take in Redis, for the operations report."""

from __future__ import annotations

import time
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from progress.errors import StoreUnavailable
from progress.keys import KeyLayout
from progress.redis_store import AsyncClient

#: The scan stops after this many keys (the report then says it is not complete).
MAX_STREAMS_MEASURED = 2000
_CACHE_SECONDS = 30.0


class StreamMemory:
    """Bytes the event streams take in Redis (``MEMORY USAGE``), measured at most every 30 s."""

    def __init__(self, client: AsyncClient, prefix: str) -> None:
        self._client = client
        self._pattern = KeyLayout(prefix).all_events()
        self._last: tuple[float, dict[str, Any]] | None = None

    async def measure(self) -> dict[str, Any]:
        """The figures; StoreUnavailable when Redis does not answer."""
        if self._last is not None and time.monotonic() - self._last[0] < _CACHE_SECONDS:
            return self._last[1]
        try:
            result = await self._scan()
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise StoreUnavailable(f"Redis unavailable: {exc}") from exc
        self._last = (time.monotonic(), result)
        return result

    async def _scan(self) -> dict[str, Any]:
        keys: list[bytes] = []
        complete = True
        async for key in self._client.scan_iter(match=self._pattern, count=1000, _type="stream"):
            if len(keys) >= MAX_STREAMS_MEASURED:
                complete = False
                break
            keys.append(key)
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.memory_usage(key)
        sizes = await pipe.execute() if keys else []
        used = (await self._client.info("memory")).get("used_memory")
        return {
            "streams_measured": len(keys),
            "complete": complete,
            "stream_bytes": sum(int(size or 0) for size in sizes),
            "redis_used_memory_bytes": used,
        }
