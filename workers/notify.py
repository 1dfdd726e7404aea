"""Telling a novel's readers what changed: workflow stages and chapter updates."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.orm import Session

import progress
from progress.events import ChapterChange, ChapterUpdated, WorkflowStatusChanged
from workers import resources
from workers.db import Chapter


def move_novel(novel_id: str, status: str) -> None:
    """Set the novel's status and send ``workflow.status-changed`` to its readers."""
    repo = resources.novels()
    old = repo.set_status(novel_id, status)
    if old == status:
        return
    novel = repo.get(novel_id)
    progress.publish(
        WorkflowStatusChanged(
            user_id=novel.owner_id,
            novel_id=novel_id,
            workflow_id=novel_id,
            old_status=old,
            new_status=status,
        ),
        novel.readers()[1:],
    )


def chapters_updated(novel_id: str, numbers: Iterable[int]) -> None:
    """Send one ``content.chapter-updated`` naming every chapter in ``numbers``."""
    wanted = set(numbers)
    novel = resources.novels().get(novel_id)
    changes = [
        ChapterChange(chapter_id=c.id, number=c.number, title=c.title, summary=c.summary)
        for c in novel.chapters
        if c.number in wanted
    ]
    progress.publish(
        ChapterUpdated(user_id=novel.owner_id, novel_id=novel_id, chapters=changes),
        novel.readers()[1:],
    )


def save_chapter_and_announce(novel_id: str, number: int, text: str, summary: str) -> None:
    """Store a chapter and its ``content.chapter-updated`` outbox row in one transaction, then
    push the event (the dispatcher pushes it should this process die first)."""
    announced: list[tuple[ChapterUpdated, list[str]]] = []

    def announce(session: Session, chapter: Chapter) -> None:
        novel = chapter.novel
        change = ChapterChange(
            chapter_id=chapter.id, number=chapter.number, title=chapter.title, summary=summary
        )
        event = ChapterUpdated(user_id=novel.owner_id, novel_id=novel_id, chapters=[change])
        announced.append((event, novel.readers()[1:]))
        resources.audit_log().add(session, announced)

    resources.novels().save_chapter(novel_id, number, text, summary, in_same_transaction=announce)
    for event, recipients in announced:
        progress.publish(event, recipients)
