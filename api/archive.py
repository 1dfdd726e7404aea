"""The SQL audit of important events, seen from the API: replay beyond what Redis holds, and
the operators' list and resend. The audit log is synchronous (SQLAlchemy); every call runs in
a worker thread so the event loop never blocks on the database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import anyio

from progress.outbox import Outgoing, placements_of
from progress.redis_store import AsyncRedisEventStore
from progress.store import StoreSettings
from workers.contracts import AuditLog, AuditRecord, drain_journal_spill

log = logging.getLogger("api.archive")


class Archive:
    """Reads and resends audited events; one per app, built in the lifespan."""

    def __init__(self, audit: AuditLog, store: AsyncRedisEventStore) -> None:
        self.audit = audit
        self._store = store
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
            pushed += await self._push(records)
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
        important = [(event, recipients) for event, recipients in batch if event.important]
        if important:
            await anyio.to_thread.run_sync(self.audit.record, important)
        event_ids = [event.event_id for event, _ in important]
        try:
            stored = await self._store.append_many(batch)
        except Exception as exc:
            if event_ids:
                reason = f"{type(exc).__name__}: {exc}"
                await self._report(self.audit.mark_failed, event_ids, reason)
            raise
        if event_ids:
            placements = placements_of(batch, stored)
            await self._report(self.audit.mark_published, event_ids, placements)

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
        """Write the journal records workers spilled while the database was down; how many."""
        return await anyio.to_thread.run_sync(drain_journal_spill, self.audit, redis_url, settings)

    @staticmethod
    async def _report(call: Callable[..., None], *args: Any) -> None:
        # The push already happened (or failed): a journal error must not undo that.
        try:
            await anyio.to_thread.run_sync(call, *args)
        except Exception:
            log.exception("could not record the outcome of a push in the audit")

    async def _push(self, records: list[AuditRecord]) -> int:
        if not records:
            return 0
        batch: list[Outgoing] = [(r.event, r.recipients) for r in records]
        event_ids = [r.event.event_id for r in records]
        try:
            stored = await self._store.append_many(batch)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            log.error("resend of %d audited events failed: %s", len(records), reason)
            await anyio.to_thread.run_sync(self.audit.mark_failed, event_ids, reason)
            raise
        placements = placements_of(batch, stored)
        await anyio.to_thread.run_sync(self.audit.mark_published, event_ids, placements)
        return len(records)

    def close(self) -> None:
        """Close the engine's pooled connections."""
        self.audit.dispose()


def _retrieve(done: asyncio.Future[float]) -> None:
    # A ping nobody waited for to the end: read its outcome so asyncio does not log it.
    if not done.cancelled():
        done.exception()
