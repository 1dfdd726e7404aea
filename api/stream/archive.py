"""The SQL audit of important events, seen from the API: replay beyond what Redis holds, the
API's own sends (system notifications) and the operators' list and resend, through the one
outbox core (``progress.outbox.Outbox``, with this process's async store). The audit log is
synchronous (SQLAlchemy); every call runs in a worker thread so the event loop never blocks on
the database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import anyio

from progress.journal_spill import RedisJournalSpill
from progress.outbox import Outbox, Outgoing, Push, drain_spill
from progress.redis_store import AsyncRedisEventStore, connect
from progress.store import StoreSettings
from workers.contracts import AuditLog

log = logging.getLogger("api.archive")


class Archive:
    """Reads, sends and resends audited events; one per app, built in the lifespan."""

    def __init__(self, audit: AuditLog, store: AsyncRedisEventStore) -> None:
        self.audit = audit
        self._store = store
        #: The API's side of the one outbox (progress.outbox): journal first, never spilled.
        self._outbox = Outbox(audit, journal_required=True)
        self._ping: asyncio.Future[float] | None = None

    async def replay(
        self, stream: str, after_id: str, limit: int
    ) -> list[tuple[str | None, bytes]] | None:
        """(stream id or None if never pushed, JSON) of the important events of ``stream`` after
        ``after_id``, in stream order; None when the database cannot be read (the caller then
        falls back to what Redis holds)."""
        try:
            return await anyio.to_thread.run_sync(self.audit.replay, stream, after_id, limit)
        except Exception as exc:
            log.warning("audit replay of %s unavailable: %s", stream, exc)
            return None

    async def pending(self) -> int:
        """Audited events not pushed yet (pending or failed): for an "outbox pending" gauge."""
        return await anyio.to_thread.run_sync(self.audit.count_pending)

    async def recent(
        self, status: str | None, user_id: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Newest audit rows first, opened, as JSON-ready dicts."""
        rows = await anyio.to_thread.run_sync(self.audit.recent, status, user_id, limit)
        return [row.summary() for row in rows]

    async def resend(self, ids: list[int] | None) -> int:
        """Push the given rows again (every failed row when None); how many were pushed.

        Raises StoreUnavailable when Redis is down (the rows are marked failed with why).
        """
        if ids is None:
            ids = await anyio.to_thread.run_sync(self.audit.failed_ids)
        pushed = 0
        for start in range(0, len(ids), 500):
            records = await anyio.to_thread.run_sync(self.audit.get, ids[start : start + 500])
            if records:
                await self._push(self._outbox.again(records))
                pushed += len(records)
        return pushed

    async def publish(self, batch: list[Outgoing]) -> None:
        """Journal the important events of ``batch`` in SQL, then push the batch to Redis and
        record the outcome: the API's own outbox, for what it sends (system notifications).

        Journal first: when the journal cannot be written, the database error propagates and
        nothing is pushed, so the sender may retry without sending twice. Raises
        StoreUnavailable when Redis is down; the journaled rows are then marked failed, and the
        dispatcher or an operator's resend pushes them later. Once pushed, a failure to mark
        the rows published is only logged: the dispatcher's re-push of such a row is refused
        by the store as a duplicate.
        """
        await self._push(await anyio.to_thread.run_sync(self._outbox.first, batch))

    async def ping(self, timeout: float) -> float | None:
        """Seconds a ``SELECT 1`` took, or None when the database did not answer within
        ``timeout``. Callers while a ping runs share it, so a hung database holds one thread."""
        if self._ping is None or self._ping.done():
            self._ping = asyncio.ensure_future(anyio.to_thread.run_sync(self._timed_ping))
            self._ping.add_done_callback(_retrieve)
        try:
            return await asyncio.wait_for(asyncio.shield(self._ping), timeout)
        except Exception:
            return None

    def _timed_ping(self) -> float:
        started = time.perf_counter()
        self.audit.ping()
        return time.perf_counter() - started

    async def drain_spill(self, redis_url: str, settings: StoreSettings) -> int:
        """Write the journal records spilled (by any process) while the database was down;
        how many. Raises what the database or Redis raise (nothing is lost then)."""
        return await anyio.to_thread.run_sync(self._drain_spill, redis_url, settings)

    def _drain_spill(self, redis_url: str, settings: StoreSettings) -> int:
        client = connect(redis_url)
        try:
            return drain_spill(RedisJournalSpill(client, settings), self.audit)
        finally:
            client.close()

    async def _push(self, push: Push) -> None:
        # The push is the async store's; the outbox's bookkeeping runs in a worker thread.
        try:
            stored = await self._store.append_many(push.batch)
        except Exception as exc:
            await anyio.to_thread.run_sync(self._outbox.failed, push, exc)
            raise
        await anyio.to_thread.run_sync(self._outbox.pushed, push, stored)

    def close(self) -> None:
        """Close the engine's pooled connections."""
        self.audit.dispose()


def _retrieve(done: asyncio.Future[float]) -> None:
    # A ping nobody waited for to the end: read its outcome so asyncio does not log it.
    if not done.cancelled():
        done.exception()
