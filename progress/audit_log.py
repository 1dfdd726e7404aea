"""The audit log of important events (table ``sse_event_audit``): the outbox's SQL side.

Every database read and write of the outbox, replay, operator tools and retention lives here.
Sensitive values are sealed on the way in and opened on the way out (``progress.sealing``).
Times are naive UTC (``progress.sql.utcnow_naive``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import (
    CursorResult,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session, sessionmaker

from progress.cursor import parse_stream_id
from progress.events import EventEnvelope, encode_event, parse_event
from progress.journal_tables import EventAudit, EventAuditStream
from progress.keys import user_of_stream
from progress.outbox import Outgoing, Placement
from progress.sealing import Sealer
from progress.sensitive import merge_sensitive, split_sensitive
from progress.sql import utcnow_naive
from progress.store import streams_for

# The hot paths (record, mark) use Core statements on the tables: ORM-enabled inserts and
# updates cost more CPU than the database work itself.
# Declarative classes type ``__table__`` as FromClause; a mapped class's is its Table.
_AUDIT = cast(Table, EventAudit.__table__)
_STREAMS = cast(Table, EventAuditStream.__table__)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An audit row with its event opened (sensitive values readable)."""

    id: int
    event: EventEnvelope
    recipients: list[str]
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    published_at: datetime | None

    def summary(self) -> dict[str, Any]:
        """JSON-ready view for operators (CLI and admin API)."""
        return {
            "id": self.id,
            "event_id": str(self.event.event_id),
            "type": self.event.type,
            "user_id": self.event.user_id,
            "recipients": self.recipients,
            "status": self.status,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "created_at": self.created_at.isoformat(),
            "published_at": self.published_at.isoformat() if self.published_at else None,
            "event": self.event.model_dump(mode="json"),
        }


class AuditLog:
    """Audit rows over a session factory, sealing sensitive values with ``sealer``."""

    def __init__(self, sessions: sessionmaker[Session], sealer: Sealer) -> None:
        self._sessions = sessions
        self._sealer = sealer

    def dispose(self) -> None:
        """Close the engine's pooled connections."""
        bind = self._sessions.kw.get("bind")
        if bind is not None:
            bind.dispose()

    def ping(self) -> None:
        """One ``SELECT 1``; raises what the database layer raises when it does not answer."""
        with self._sessions() as session:
            session.execute(text("SELECT 1"))

    # -- writing -----------------------------------------------------------------------------

    def _row(self, event: EventEnvelope, now: datetime) -> dict[str, Any]:
        data, secrets = split_sensitive(event)
        return {
            "event_id": str(event.event_id),
            "type": event.type,
            "user_id": event.user_id,
            "session_id": event.session_id,
            "audience": event.audience,
            "task_id": event.task_id,
            "novel_id": event.novel_id,
            "chapter_id": event.chapter_id,
            "workflow_id": event.workflow_id,
            "payload": orjson.dumps(data).decode(),
            "sealed": self._sealer.seal(secrets),
            "occurred_at": event.occurred_at.replace(tzinfo=None),
            "created_at": now,
            "status": "pending",
            "attempts": 0,
        }

    def add(self, session: Session, batch: Sequence[Outgoing]) -> None:
        """Insert rows for ``batch`` in the caller's transaction (the domain change's own)."""
        if not batch:
            return
        now = utcnow_naive()
        ids = session.execute(
            insert(_AUDIT).returning(_AUDIT.c.id, sort_by_parameter_order=True),
            [self._row(event, now) for event, _ in batch],
        ).scalars()
        session.execute(
            insert(_STREAMS),
            [
                {"audit_id": audit_id, "stream": stream, "position": index}
                for audit_id, (event, recipients) in zip(ids, batch, strict=True)
                for index, stream in enumerate(streams_for(event, recipients))
            ],
        )

    def record(self, batch: Sequence[Outgoing]) -> int:
        """Insert rows for the events not recorded yet, in one transaction; how many."""
        wanted = {str(event.event_id): (event, recipients) for event, recipients in batch}
        with self._sessions.begin() as session:
            column = _AUDIT.c.event_id
            known = set(session.scalars(select(column).where(column.in_(wanted))))
            fresh = [item for key, item in wanted.items() if key not in known]
            self.add(session, fresh)
        return len(fresh)

    def mark_published(
        self, event_ids: Sequence[uuid.UUID], placements: Sequence[Placement]
    ) -> None:
        """Status ``published`` for ``event_ids``; remember each copy's stream id."""
        now = utcnow_naive()
        keys = [str(event_id) for event_id in event_ids]
        with self._sessions.begin() as session:
            session.execute(
                update(_AUDIT)
                .where(_AUDIT.c.event_id.in_(keys))
                .values(
                    status="published",
                    published_at=now,
                    attempts=_AUDIT.c.attempts + 1,
                    last_error=None,
                )
            )
            if not placements:
                return
            table = _STREAMS
            audit_id = (
                select(_AUDIT.c.id).where(_AUDIT.c.event_id == bindparam("e")).scalar_subquery()
            )
            rows = []
            for placement in placements:
                ms, seq = parse_stream_id(placement.id)
                rows.append(
                    {"e": str(placement.event_id), "s": placement.stream, "ms": ms, "seq": seq}
                )
            session.execute(
                update(table)
                .where(table.c.audit_id == audit_id, table.c.stream == bindparam("s"))
                .values(stream_ms=bindparam("ms"), stream_seq=bindparam("seq")),
                rows,
            )

    def mark_failed(self, event_ids: Sequence[uuid.UUID], reason: str) -> None:
        """Status ``failed``, one more attempt, and why."""
        with self._sessions.begin() as session:
            session.execute(
                update(_AUDIT)
                .where(_AUDIT.c.event_id.in_([str(e) for e in event_ids]))
                .values(status="failed", attempts=_AUDIT.c.attempts + 1, last_error=reason[:2000])
            )

    # -- reading -----------------------------------------------------------------------------

    def _open(self, row: EventAudit) -> AuditRecord:
        data = merge_sensitive(orjson.loads(row.payload), self._sealer.open(row.sealed))
        event = parse_event(data)
        owner = event.user_id
        recipients = [
            user
            for s in row.streams
            if (user := user_of_stream(s.stream)) is not None and user != owner
        ]
        return AuditRecord(
            id=row.id,
            event=event,
            recipients=recipients,
            status=row.status,
            attempts=row.attempts,
            last_error=row.last_error,
            created_at=row.created_at,
            published_at=row.published_at,
        )

    def due_for_push(
        self, older_than: datetime, max_attempts: int, limit: int = 500
    ) -> list[AuditRecord]:
        """Rows the dispatcher should push: pending ones created before ``older_than``, and
        failed ones with fewer than ``max_attempts`` attempts; oldest first."""
        query = (
            select(EventAudit)
            .where(
                or_(
                    and_(EventAudit.status == "pending", EventAudit.created_at < older_than),
                    and_(EventAudit.status == "failed", EventAudit.attempts < max_attempts),
                )
            )
            .order_by(EventAudit.id)
            .limit(limit)
        )
        with self._sessions() as session:
            return [self._open(row) for row in session.scalars(query)]

    def recent(
        self, status: str | None = None, user_id: str | None = None, limit: int = 100
    ) -> list[AuditRecord]:
        """Newest rows first, optionally only one status or one user's."""
        query = select(EventAudit).order_by(EventAudit.id.desc()).limit(limit)
        if status is not None:
            query = query.where(EventAudit.status == status)
        if user_id is not None:
            query = query.where(EventAudit.user_id == user_id)
        with self._sessions() as session:
            return [self._open(row) for row in session.scalars(query)]

    def get(self, ids: Iterable[int]) -> list[AuditRecord]:
        """These rows (those that exist), oldest first."""
        query = select(EventAudit).where(EventAudit.id.in_(list(ids))).order_by(EventAudit.id)
        with self._sessions() as session:
            return [self._open(row) for row in session.scalars(query)]

    def failed_ids(self, limit: int = 10_000) -> list[int]:
        """Ids of failed rows, oldest first."""
        query = (
            select(EventAudit.id)
            .where(EventAudit.status == "failed")
            .order_by(EventAudit.id)
            .limit(limit)
        )
        with self._sessions() as session:
            return list(session.scalars(query))

    def count_pending(self) -> int:
        """Rows not pushed yet (pending or failed): the outbox backlog, for a gauge."""
        query = select(func.count()).where(EventAudit.status.in_(("pending", "failed")))
        with self._sessions() as session:
            return int(session.scalar(query) or 0)

    def replay(self, stream: str, after_id: str, limit: int) -> list[tuple[str | None, bytes]]:
        """(stream id, JSON) of the important events of ``stream`` after stream id ``after_id``,
        in stream order; events never pushed (id None) come last, in the order recorded."""
        ms, seq = parse_stream_id(after_id)
        link = EventAuditStream
        query = (
            select(EventAudit)
            .join(link, link.audit_id == EventAudit.id)
            .where(
                link.stream == stream,
                or_(
                    link.stream_ms.is_(None),
                    link.stream_ms > ms,
                    and_(link.stream_ms == ms, link.stream_seq > seq),
                ),
            )
            .order_by(link.stream_ms.is_(None), link.stream_ms, link.stream_seq, EventAudit.id)
            .limit(limit)
        )
        with self._sessions() as session:
            return [
                (
                    None if ms is None else f"{ms}-{seq}",
                    encode_event(self._open(row).event),
                )
                for row, ms, seq in session.execute(
                    query.add_columns(link.stream_ms, link.stream_seq)
                )
            ]

    # -- maintenance -------------------------------------------------------------------------

    def delete_before(self, cutoff: datetime, batch_size: int = 1000) -> int:
        """Delete rows created before ``cutoff``, one short transaction per primary-key range
        of ``batch_size``; how many were deleted."""
        with self._sessions() as session:
            low, high = session.execute(
                select(func.min(EventAudit.id), func.max(EventAudit.id)).where(
                    EventAudit.created_at < cutoff
                )
            ).one()
        if low is None:
            return 0
        deleted = 0
        for start in range(low, high + 1, batch_size):
            in_range = and_(
                EventAudit.id >= start,
                EventAudit.id < start + batch_size,
                EventAudit.created_at < cutoff,
            )
            with self._sessions.begin() as session:
                doomed = select(EventAudit.id).where(in_range)
                session.execute(
                    delete(EventAuditStream).where(EventAuditStream.audit_id.in_(doomed))
                )
                # Session.execute is typed to return a Result; for a DELETE it is a CursorResult.
                gone = cast(CursorResult[Any], session.execute(delete(EventAudit).where(in_range)))
                deleted += gone.rowcount or 0
        return deleted

    def rotate_keys(self, batch_size: int = 500) -> int:
        """Re-seal every sealed value under the newest key, batch by batch; how many."""
        done, after = 0, 0
        while True:
            with self._sessions.begin() as session:
                rows = list(
                    session.scalars(
                        select(EventAudit)
                        .where(EventAudit.id > after, EventAudit.sealed.is_not(None))
                        .order_by(EventAudit.id)
                        .limit(batch_size)
                    )
                )
                for row in rows:
                    assert row.sealed is not None
                    row.sealed = self._sealer.rotate(row.sealed)
            if not rows:
                return done
            done += len(rows)
            after = rows[-1].id
