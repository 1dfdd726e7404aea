"""Whether Redis answers, as this instance last saw it.

While Redis is down, stream opens and sse_token requests are refused at once (503
``store_unavailable`` with ``Retry-After``) instead of each waiting for the command pool's
connect retries, and health answers from here. Redis is taken for down when a PING fails (the
probe's, every ``interval``; health's) or when a command of the pool failed for good
(``BatchingRedis.on_unreachable``). While down, the probe PINGs every ``down_interval``; the
first answer brings everything back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from progress.errors import StoreUnavailable

log = logging.getLogger("api.redis_health")

#: What clients are told: no address, no driver message (those go to the log, once).
REDIS_DOWN = "Redis does not answer; retry later"


class RedisHealth:
    """The up/down flag, the probe that keeps it, and the check every open makes."""

    def __init__(
        self,
        ping: Callable[[], Awaitable[float]],
        interval: float,
        down_interval: float,
        timeout: float,
        on_ping: Callable[[float | None], None] | None = None,
    ) -> None:
        self._ping = ping
        self._interval = interval
        self._down_interval = down_interval
        self._timeout = timeout
        self._on_ping = on_ping
        self._wake = asyncio.Event()
        self.up = True

    def check(self) -> None:
        """StoreUnavailable at once while Redis is taken for down."""
        if not self.up:
            raise StoreUnavailable(REDIS_DOWN)

    def failed(self, reason: object) -> None:
        """Redis did not answer a command: down until a PING answers (the probe PINGs now)."""
        if self.up:
            log.warning("Redis is down: %s", reason, extra={"reason": "redis_down"})
            self.up = False
            self._wake.set()

    async def probe(self) -> float:
        """One PING bounded by ``timeout``: its round trip, and the flag set from it;
        StoreUnavailable (a message without details) when Redis does not answer."""
        try:
            async with asyncio.timeout(self._timeout):
                seconds = await self._ping()
        except (StoreUnavailable, TimeoutError) as exc:
            self._report(None)
            self.failed(str(exc) or f"no answer within {self._timeout} s")
            raise StoreUnavailable(REDIS_DOWN) from exc
        if not self.up:
            log.warning("Redis answers again", extra={"reason": "redis_up"})
            self.up = True
        self._report(seconds)
        return seconds

    async def run(self) -> None:
        """PING forever: every ``interval``, or ``down_interval`` while Redis is down."""
        while True:
            with contextlib.suppress(StoreUnavailable):
                await self.probe()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval if self.up else self._down_interval):
                    await self._wake.wait()

    def _report(self, seconds: float | None) -> None:
        if self._on_ping is not None:
            self._on_ping(seconds)
