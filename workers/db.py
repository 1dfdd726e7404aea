"""The domain's tables (SQLAlchemy 2): novels, their readers, and chapters.

SQLite by default (``DATABASE_URL`` unset), PostgreSQL in production; the schema is created by
the Alembic migrations in ``workers/migrations``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import (
    DateTime,
    ForeignKey,
    String,
    Text,
    UniqueConstraint,
    exc,
)
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    mapped_column,
    relationship,
)

#: What the database layer raises when the database does not answer (refused, dropped,
#: timed out, pool exhausted): the API answers 503 for these, never 500, and the workers count
#: them towards a database outage (``workers.outages``).
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    exc.OperationalError,
    exc.InterfaceError,
    exc.TimeoutError,
)


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
