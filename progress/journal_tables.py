"""The journal's tables (SQLAlchemy 2): important events and the streams they went to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from progress.sql import BigId, utcnow_naive


class JournalBase(DeclarativeBase):
    """Declarative base of the journal's tables (migrations: ``progress/migrations``)."""


class EventAudit(JournalBase):
    """One important event: the outbox row written before the push, kept as the audit trail.

    ``payload`` is the event's JSON with every sensitive value set to null; ``sealed`` holds
    those values encrypted (Fernet, see ``progress.sealing``). ``status`` is ``pending`` until
    the push to Redis succeeded (``published``) or failed (``failed``, with ``last_error``).
    """

    __tablename__ = "sse_event_audit"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(64), index=True)
    session_id: Mapped[str | None] = mapped_column(String(64))
    audience: Mapped[str] = mapped_column(String(16))
    task_id: Mapped[str | None] = mapped_column(String(64))
    novel_id: Mapped[str | None] = mapped_column(String(64))
    chapter_id: Mapped[str | None] = mapped_column(String(64))
    workflow_id: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    sealed: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(DateTime())
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow_naive, index=True)
    published_at: Mapped[datetime | None] = mapped_column(DateTime())
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)

    streams: Mapped[list[EventAuditStream]] = relationship(
        back_populates="audit",
        cascade="all, delete-orphan",
        passive_deletes=True,
        lazy="selectin",
        order_by="EventAuditStream.position",
    )


class EventAuditStream(JournalBase):
    """A stream an audited event belongs to (owner's first), and its id there once pushed.

    Replay reads these rows: a stream's important events after a cursor's id, in stream order.
    """

    __tablename__ = "sse_event_audit_streams"
    __table_args__ = (Index("ix_sse_audit_streams_replay", "stream", "stream_ms", "stream_seq"),)

    audit_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("sse_event_audit.id", ondelete="CASCADE"), primary_key=True
    )
    stream: Mapped[str] = mapped_column(String(70), primary_key=True)
    position: Mapped[int] = mapped_column(default=0)
    stream_ms: Mapped[int | None] = mapped_column(BigInteger)
    stream_seq: Mapped[int | None] = mapped_column(BigInteger)

    audit: Mapped[EventAudit] = relationship(back_populates="streams")
