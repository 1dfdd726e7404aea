"""The SQL audit of important events, seen from the API: replay beyond what Redis holds, and
the operators' list and resend. The audit log is synchronous (SQLAlchemy); every call runs in
a worker thread so the event loop never blocks on the database.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio

from progress.outbox import Outgoing, placements_of
from progress.redis_store import AsyncRedisEventStore
from workers.contracts import AuditLog, AuditRecord

log = logging.getLogger("api.archive")


class Archive:
    """Reads and resends audited events; one per app, built in the lifespan."""

    def __init__(self, audit: AuditLog, store: AsyncRedisEventStore) -> None:
        self.audit = audit
        self._store = store

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

        A journal that fails is logged and the batch is pushed anyway (as the workers do).
        Raises StoreUnavailable when Redis is down; the journaled rows are then marked failed,
        and the dispatcher or an operator's resend pushes them later.
        """
        important = [(event, recipients) for event, recipients in batch if event.important]
        if important:
            try:
                await anyio.to_thread.run_sync(self.audit.record, important)
            except Exception:
                log.exception("could not journal %d important events; pushing anyway", len(batch))
        event_ids = [event.event_id for event, _ in important]
        try:
            stored = await self._store.append_many(batch)
        except Exception as exc:
            if event_ids:
                reason = f"{type(exc).__name__}: {exc}"
                await anyio.to_thread.run_sync(self.audit.mark_failed, event_ids, reason)
            raise
        if event_ids:
            placements = placements_of(batch, stored)
            await anyio.to_thread.run_sync(self.audit.mark_published, event_ids, placements)

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
