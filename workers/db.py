"""The domain's tables (SQLAlchemy 2): novels, their readers, and chapters.

SQLite by default (``DATABASE_URL`` unset), PostgreSQL in production; the schema is created by
the Alembic migrations in ``workers/migrations``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, sessionmaker


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
        """The owner, then every member: who may read this novel."""
        return [self.owner_id, *(m.user_id for m in self.members)]


class NovelMember(Base):
    """A user other than the owner who may read the novel."""

    __tablename__ = "novel_members"
    __table_args__ = (UniqueConstraint("novel_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    novel_id: Mapped[str] = mapped_column(ForeignKey("novels.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(64), index=True)

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


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys and a busy timeout for concurrent writers."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def make_sessions(engine: Engine) -> sessionmaker:
    """A session factory whose objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)
