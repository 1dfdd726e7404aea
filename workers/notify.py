"""Telling a novel's readers what changed: workflow stages and chapter updates.

What is told is already in the database. While Redis is unreachable an announcement goes to
this process's event sender instead, which keeps it until Redis is back (see
``progress.pump``): a task does not fail because its readers hear of its work late.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy.orm import Session

import progress
from progress.errors import StoreUnavailable
from progress.events import ChapterChange, ChapterUpdated, EventEnvelope, WorkflowStatusChanged
from progress.runtime import get_reporter
from workers import resources
from workers.db import Chapter
from workers.novels import IN_PROGRESS

#: A step's run may move its novel from these: a novel in progress, or one failed by a run
#: that a redelivery brought back (its workflow goes on). A cancel and a finished novel stand.
MOVABLE = (*IN_PROGRESS, "failed")


def move_novel(novel_id: str, status: str, movable: Sequence[str] = MOVABLE) -> bool:
    """Move the novel to ``status`` if its status is one of ``movable`` and send
    ``workflow.status-changed`` to its readers; False (nothing changed) otherwise."""
    old = resources.novels().move_if_in(novel_id, movable, status)
    if old is None:
        return False
    if old != status:
        announce_status(novel_id, old, status)
    return True


def announce_status(novel_id: str, old: str | None, new: str) -> None:
    """Send ``workflow.status-changed`` (``old`` to ``new``) to the novel's readers."""
    novel = resources.novels().get(novel_id)
    _publish(
        WorkflowStatusChanged(
            user_id=novel.owner_id,
            novel_id=novel_id,
            workflow_id=novel_id,
            old_status=old,
            new_status=new,
        ),
        novel.readers()[1:],
    )


def _publish(event: EventEnvelope, recipients: list[str]) -> None:
    try:
        progress.publish(event, recipients)
    except StoreUnavailable:
        get_reporter().submit(event, recipients)


def chapters_updated(novel_id: str, numbers: Iterable[int]) -> None:
    """Send one ``content.chapter-updated`` naming every chapter in ``numbers``."""
    wanted = set(numbers)
    novel = resources.novels().get(novel_id)
    changes = [
        ChapterChange(chapter_id=c.id, number=c.number, title=c.title, summary=c.summary)
        for c in novel.chapters
        if c.number in wanted
    ]
    _publish(
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
        _publish(event, recipients)
