"""The domain's tables (SQLAlchemy 2): novels, their readers, and chapters.

SQLite by default (``DATABASE_URL`` unset), PostgreSQL in production; the schema is created by
the Alembic migrations in ``workers/migrations``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    sessionmaker,
)
from sqlalchemy.pool import ConnectionPoolEntry


def _now() -> datetime:
    return datetime.now(UTC)


def _id() -> str:
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    """Declarative base of every table."""


class Novel(Base):
    """A novel being created: its owner, premise, and where its workflow stands."""

    __tablename__ = "novels"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=_id)
    owner_id: Mapped[str] = mapped_column(String(64), index=True)
    title: Mapped[str] = mapped_column(String(200))
    premise: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    chapter_count: Mapped[int]
    outline: Mapped[str] = mapped_column(Text, default="")
    task_id: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=_now)
    updated_at: Mapped[datetime] = mapped_column(default=_now, onupdate=_now)

    members: Mapped[list[NovelMember]] = relationship(
        back_populates="novel", cascade="all, delete-orphan", lazy="selectin"
    )
    chapters: Mapped[list[Chapter]] = relationship(
        back_populates="novel",
        cascade="all, delete-orphan",
        order_by="Chapter.number",
        lazy="selectin",
    )

    def readers(self) -> list[str]:
        """The owner, then every member who accepted: who may read this novel and receives
        its content events. Invited users who have not accepted are not readers."""
        return [self.owner_id, *(m.user_id for m in self.members if m.accepted_at is not None)]


#: Statuses of a novel whose workflow is over; any other counts against the active cap.
FINISHED_STATUSES = ("done", "failed", "cancelled")


class NovelMember(Base):
    """A user other than the owner invited to read the novel: a reader once ``accepted_at``
    is set (by that user), a pending invitation until then."""

    __tablename__ = "novel_members"
    __table_args__ = (UniqueConstraint("novel_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    novel_id: Mapped[str] = mapped_column(ForeignKey("novels.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(), default=None)

    novel: Mapped[Novel] = relationship(back_populates="members")


class Chapter(Base):
    """One chapter: its text once written, and a summary for notifications."""

    __tablename__ = "chapters"
    __table_args__ = (UniqueConstraint("novel_id", "number"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=_id)
    novel_id: Mapped[str] = mapped_column(ForeignKey("novels.id", ondelete="CASCADE"), index=True)
    number: Mapped[int]
    title: Mapped[str] = mapped_column(String(200), default="")
    plan: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default="pending")
    updated_at: Mapped[datetime] = mapped_column(default=_now, onupdate=_now)

    novel: Mapped[Novel] = relationship(back_populates="chapters")


#: Autoincrementing 64-bit keys; SQLite only autoincrements an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer, "sqlite")


def utcnow_naive() -> datetime:
    """Now in UTC without tzinfo: how the audit tables store time on every backend."""
    return datetime.now(UTC).replace(tzinfo=None)


class EventAudit(Base):
    """One important event: the outbox row written before the push, kept as the audit trail.

    ``payload`` is the event's JSON with every sensitive value set to null; ``sealed`` holds
    those values encrypted (Fernet, see ``workers.sealing``). ``status`` is ``pending`` until
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


class EventAuditStream(Base):
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


#: Seconds to wait for a PostgreSQL connection before the call fails.
CONNECT_TIMEOUT_SECONDS = 3


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys and a busy timeout for concurrent writers."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    # A database that does not answer must fail a request in seconds (503), not hang it.
    postgres = url.startswith("postgres")
    connect_args = {"connect_timeout": CONNECT_TIMEOUT_SECONDS} if postgres else {}
    return create_engine(url, pool_pre_ping=True, pool_timeout=10, connect_args=connect_args)


def make_sessions(engine: Engine) -> sessionmaker[Session]:
    """A session factory whose objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)
