"""The novel repository: every database read and write of the domain."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, and_, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from progress.sql import utcnow_naive
from workers.db import FINISHED_STATUSES, Chapter, Novel, NovelMember
from workers.pipeline import ChapterPlan

#: Most pending invitations listed for one user (newest first).
MAX_INVITATIONS_LISTED = 100


@dataclass(frozen=True, slots=True)
class NovelChange:
    """When a novel last changed, and whose it is."""

    novel_id: str
    owner_id: str
    updated_at: datetime
    status: str = ""

    def changed_before(self, moment: datetime) -> bool:
        """True if the novel last changed before ``moment`` (stored times are UTC)."""
        at = self.updated_at
        return (at if at.tzinfo else at.replace(tzinfo=UTC)) < moment


#: A novel's workflow is still running in these; ``done``, ``failed`` and ``cancelled`` are
#: final.
IN_PROGRESS = ("queued", "outlining", "drafting", "reviewing")


class NovelNotFound(LookupError):
    """No such novel (or not one the caller may read)."""


class UnknownChapters(ValueError):
    """Chapter numbers the novel does not have."""

    def __init__(self, numbers: Sequence[int], chapter_count: int) -> None:
        listed = ", ".join(str(n) for n in numbers)
        super().__init__(f"the novel has chapters 1 to {chapter_count}; no chapter {listed}")
        self.numbers = list(numbers)


class TooManyActiveChapters(Exception):
    """The owner's novels still in progress would hold more chapters than allowed."""

    def __init__(self, active: int, requested: int, limit: int) -> None:
        super().__init__(
            f"{active} chapters of your novels are still being written and {requested} more "
            f"would pass the limit of {limit}; wait for a novel to finish or cancel one"
        )
        self.active, self.requested, self.limit = active, requested, limit


@dataclass(frozen=True, slots=True)
class Invitation:
    """A novel someone invited the user to read, not accepted yet."""

    novel_id: str
    title: str
    owner_id: str
    created_at: datetime


class NovelRepository:
    """Novels and chapters over a SQLAlchemy session factory."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def dispose(self) -> None:
        """Close the engine's pooled connections."""
        bind = self._sessions.kw.get("bind")
        if bind is not None:
            bind.dispose()

    def create(
        self,
        owner_id: str,
        title: str,
        premise: str,
        chapter_count: int,
        members: Sequence[str],
        in_same_transaction: Callable[[Session, Novel], None] | None = None,
        max_active_chapters: int | None = None,
    ) -> Novel:
        """A new queued novel with empty chapters; ``members`` are invited, not readers yet.

        With ``max_active_chapters``, TooManyActiveChapters (and nothing stored) when the
        owner's unfinished novels, this one included, would hold more chapters. The count and
        the insert are one transaction serialized per owner, so simultaneous requests cannot
        both slip under the limit.
        ``in_same_transaction(session, novel)`` runs before the commit (the outbox adds the
        ``content.novel-created`` row there, so both exist or neither).
        """
        with self._sessions.begin() as session:
            if max_active_chapters is not None:
                _serialize_owner(session, owner_id)
            novel = Novel(
                owner_id=owner_id, title=title, premise=premise, chapter_count=chapter_count
            )
            novel.members = [
                NovelMember(user_id=m) for m in dict.fromkeys(members) if m != owner_id
            ]
            novel.chapters = [Chapter(number=n) for n in range(1, chapter_count + 1)]
            session.add(novel)
            session.flush()
            if max_active_chapters is not None:
                active = _active_chapters(session, owner_id)
                if active > max_active_chapters:
                    raise TooManyActiveChapters(
                        active - chapter_count, chapter_count, max_active_chapters
                    )
            if in_same_transaction is not None:
                in_same_transaction(session, novel)
        return self.get(novel.id)

    def get(self, novel_id: str) -> Novel:
        """The novel with members and chapters; NovelNotFound if it does not exist."""
        with self._sessions() as session:
            novel = session.get(Novel, novel_id)
            if novel is None:
                raise NovelNotFound(novel_id)
            return novel

    def get_readable(self, novel_id: str, user_id: str) -> Novel:
        """The novel if ``user_id`` may read it; NovelNotFound otherwise (never reveal it)."""
        novel = self.get(novel_id)
        if user_id not in novel.readers():
            raise NovelNotFound(novel_id)
        return novel

    def list_readable(self, user_id: str) -> list[Novel]:
        """Novels the user owns or accepted to read, newest first."""
        with self._sessions() as session:
            accepted = and_(NovelMember.user_id == user_id, NovelMember.accepted_at.is_not(None))
            query = (
                select(Novel)
                .outerjoin(NovelMember)
                .where(or_(Novel.owner_id == user_id, accepted))
                .order_by(Novel.created_at.desc())
                .distinct()
            )
            return list(session.scalars(query))

    def invitations(self, user_id: str) -> list[Invitation]:
        """The user's pending invitations, newest novel first (at most 100)."""
        with self._sessions() as session:
            query = (
                select(Novel.id, Novel.title, Novel.owner_id, Novel.created_at)
                .join(NovelMember)
                .where(NovelMember.user_id == user_id, NovelMember.accepted_at.is_(None))
                .order_by(Novel.created_at.desc())
                .limit(MAX_INVITATIONS_LISTED)
            )
            return [Invitation(*row) for row in session.execute(query)]

    def accept(
        self, novel_id: str, user_id: str, before_commit: Callable[[], None] | None = None
    ) -> None:
        """The invited user accepts (again: no change); NovelNotFound when not invited.
        ``before_commit`` runs once the invitation is found; if it raises, nothing changes."""
        with self._sessions.begin() as session:
            member = _membership(session, novel_id, user_id)
            if before_commit is not None:
                before_commit()
            if member.accepted_at is None:
                member.accepted_at = utcnow_naive()

    def leave(self, novel_id: str, user_id: str) -> bool:
        """Decline an invitation or stop reading; whether the user was a reader.
        NovelNotFound when the user was neither invited nor a member."""
        with self._sessions.begin() as session:
            member = _membership(session, novel_id, user_id)
            was_reader = member.accepted_at is not None
            session.delete(member)
            return was_reader

    def move_if_in(self, novel_id: str, statuses: Sequence[str], status: str) -> str | None:
        """Move the novel to ``status`` if its status is one of ``statuses``, in one atomic
        statement (two failing steps never both see the old status, a step ending never
        overwrites a cancel); the old status, or None if it was not moved."""
        with self._sessions.begin() as session:
            old = session.scalar(select(Novel.status).where(Novel.id == novel_id))
            if old not in statuses:
                return None
            # Session.execute is typed to return a Result; for an UPDATE it is a CursorResult.
            moved = cast(
                CursorResult[Any],
                session.execute(
                    update(Novel)
                    .where(Novel.id == novel_id, Novel.status == old)
                    .values(status=status)
                ),
            )
            return old if moved.rowcount == 1 else None

    def changed_in(self, statuses: Sequence[str]) -> list[NovelChange]:
        """Id, owner and time of last change of every novel whose status is in ``statuses``."""
        with self._sessions() as session:
            query = select(Novel.id, Novel.owner_id, Novel.updated_at, Novel.status).where(
                Novel.status.in_(statuses)
            )
            return [NovelChange(*row) for row in session.execute(query)]

    def claim_stalled(self, novel_id: str, status: str, seen_updated_at: datetime) -> bool:
        """Mark the novel as changed now if it is still ``status`` and unchanged since
        ``seen_updated_at``, in one statement: of several sweeps that found it stalled, only
        one gets True and acts on it."""
        with self._sessions.begin() as session:
            moved = cast(
                CursorResult[Any],
                session.execute(
                    update(Novel)
                    .where(
                        Novel.id == novel_id,
                        Novel.status == status,
                        Novel.updated_at == seen_updated_at,
                    )
                    .values(updated_at=utcnow_naive())
                ),
            )
            return moved.rowcount == 1

    def set_task(self, novel_id: str, task_id: str) -> None:
        """Remember the task that runs the novel's workflow."""
        with self._sessions.begin() as session:
            novel = session.get(Novel, novel_id)
            if novel is not None:
                novel.task_id = task_id

    def save_outline(self, novel_id: str, outline: str, plans: Sequence[ChapterPlan]) -> None:
        """Store the outline and each chapter's title and plan."""
        with self._sessions.begin() as session:
            novel = session.get(Novel, novel_id)
            if novel is None:
                raise NovelNotFound(novel_id)
            novel.outline = outline
            by_number = {chapter.number: chapter for chapter in novel.chapters}
            for plan in plans:
                chapter = by_number[plan.number]
                chapter.title, chapter.plan = plan.title, plan.plan

    def chapter(self, novel_id: str, number: int) -> Chapter:
        """One chapter; NovelNotFound if the novel or chapter does not exist."""
        with self._sessions() as session:
            chapter = session.scalars(
                select(Chapter).where(Chapter.novel_id == novel_id, Chapter.number == number)
            ).first()
            if chapter is None:
                raise NovelNotFound(f"{novel_id}/{number}")
            return chapter

    def save_chapter(
        self,
        novel_id: str,
        number: int,
        text: str,
        summary: str,
        status: str = "written",
        in_same_transaction: Callable[[Session, Chapter], None] | None = None,
    ) -> Chapter:
        """Store a chapter's text and summary; ``in_same_transaction(session, chapter)`` runs
        before the commit (the outbox adds ``content.chapter-updated`` there)."""
        with self._sessions.begin() as session:
            chapter = session.scalars(
                select(Chapter).where(Chapter.novel_id == novel_id, Chapter.number == number)
            ).one()
            chapter.text, chapter.summary, chapter.status = text, summary, status
            if in_same_transaction is not None:
                in_same_transaction(session, chapter)
            return chapter

    def set_chapter_status(self, novel_id: str, number: int, status: str) -> None:
        """Mark one chapter (drafting, written, failed)."""
        with self._sessions.begin() as session:
            chapter = session.scalars(
                select(Chapter).where(Chapter.novel_id == novel_id, Chapter.number == number)
            ).one()
            chapter.status = status


def _membership(session: Session, novel_id: str, user_id: str) -> NovelMember:
    member = session.scalars(
        select(NovelMember).where(NovelMember.novel_id == novel_id, NovelMember.user_id == user_id)
    ).first()
    if member is None:
        raise NovelNotFound(novel_id)
    return member


def _serialize_owner(session: Session, owner_id: str) -> None:
    """Make one owner's creations run one at a time until the commit. SQLite needs nothing:
    the novel's insert takes its single write lock before the count reads."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(owner_id, 0))))


def _active_chapters(session: Session, owner_id: str) -> int:
    """Chapters of the owner's novels whose workflow has not finished."""
    total = session.scalar(
        select(func.coalesce(func.sum(Novel.chapter_count), 0)).where(
            Novel.owner_id == owner_id, Novel.status.not_in(FINISHED_STATUSES)
        )
    )
    return int(total or 0)
