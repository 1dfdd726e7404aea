"""Telling a novel's readers what changed: workflow stages and chapter updates."""

from __future__ import annotations

from collections.abc import Iterable

import progress
from progress.events import ChapterChange, ChapterUpdated, WorkflowStatusChanged
from workers import resources


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
