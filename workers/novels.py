"""The novel repository: every database read and write of the domain."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from workers.db import Chapter, Novel, NovelMember
from workers.pipeline import ChapterPlan


class NovelNotFound(LookupError):
    """No such novel (or not one the caller may read)."""


class NovelRepository:
    """Novels and chapters over a SQLAlchemy session factory."""

    def __init__(self, sessions: sessionmaker) -> None:
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
    ) -> Novel:
        """A new queued novel with empty chapters.

        ``in_same_transaction(session, novel)`` runs before the commit (the outbox adds the
        ``content.novel-created`` row there, so both exist or neither).
        """
        with self._sessions.begin() as session:
            novel = Novel(
                owner_id=owner_id, title=title, premise=premise, chapter_count=chapter_count
            )
            novel.members = [
                NovelMember(user_id=m) for m in dict.fromkeys(members) if m != owner_id
            ]
            novel.chapters = [Chapter(number=n) for n in range(1, chapter_count + 1)]
            session.add(novel)
            if in_same_transaction is not None:
                session.flush()
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
        """Novels the user owns or is a member of, newest first."""
        with self._sessions() as session:
            query = (
                select(Novel)
                .outerjoin(NovelMember)
                .where(or_(Novel.owner_id == user_id, NovelMember.user_id == user_id))
                .order_by(Novel.created_at.desc())
                .distinct()
            )
            return list(session.scalars(query))

    def set_status(self, novel_id: str, status: str) -> str:
        """Move the novel to ``status``; return the status it had."""
        with self._sessions.begin() as session:
            novel = session.get(Novel, novel_id)
            if novel is None:
                raise NovelNotFound(novel_id)
            old, novel.status = novel.status, status
            return old

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
