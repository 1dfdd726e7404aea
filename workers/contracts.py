"""What the API may ask of the workers' side: the only module ``api`` imports from ``workers``.

Every function is synchronous (database, broker); the API calls them from its thread pool.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from celery import Celery
from sqlalchemy.orm import Session

import progress
from progress.audit_log import AuditLog, AuditRecord
from progress.events import NovelCreated
from progress.outbox import OutboxWriter, Outgoing
from progress.sealing import DEV_AUDIT_KEY, MissingAuditKeys, Sealer, sealing_keys
from progress.sql import make_engine, make_sessions
from workers import resources
from workers.cancel_requests import request_cancel
from workers.db import DATABASE_UNAVAILABLE, Novel
from workers.migrate import SchemaOutdated, ensure_schema
from workers.notify import move_novel
from workers.novels import (
    IN_PROGRESS,
    Invitation,
    NovelNotFound,
    TooManyActiveChapters,
    UnknownChapters,
)
from workers.tasks import limits

__all__ = [
    "DATABASE_UNAVAILABLE",
    "DEV_AUDIT_KEY",
    "MissingAuditKeys",
    "AuditLog",
    "AuditRecord",
    "Invitation",
    "Novel",
    "NovelNotFound",
    "SchemaOutdated",
    "TaskNotFound",
    "TooManyActiveChapters",
    "UnknownChapters",
    "accept_invitation",
    "cancel_novel",
    "cancel_task",
    "close",
    "ensure_schema",
    "get_novel",
    "leave_novel",
    "list_invitations",
    "list_novels",
    "open_audit_log",
    "revise_chapter",
    "revise_chapters",
    "send_journaled",
    "start_novel",
]


_ENDED = frozenset({"done", "failed", "cancelled"})


class TaskNotFound(LookupError):
    """No such task for this user."""


def _app() -> Celery:
    return resources.celery_app()


def start_novel(
    owner_id: str,
    session_id: str | None,
    title: str,
    premise: str,
    chapter_count: int,
    members: Sequence[str] = (),
    max_active_chapters: int | None = None,
) -> tuple[Novel, str]:
    """Create the novel, tell its owner, and start its workflow; (novel, task id).

    ``members`` are invited: they receive nothing and read nothing until they accept
    (``accept_invitation``). TooManyActiveChapters when the owner's unfinished novels would
    hold more than ``max_active_chapters`` chapters (nothing is created or queued then).

    The ``content.novel-created`` outbox row commits in the novel's own transaction; it is
    pushed right after (or by the dispatcher, should this process die first).
    """
    repo = resources.novels()
    announced: list[tuple[NovelCreated, list[str]]] = []

    def announce(session: Session, novel: Novel) -> None:
        event = NovelCreated(
            user_id=owner_id,
            session_id=session_id,
            novel_id=novel.id,
            title=title,
            premise=premise,
            chapter_count=chapter_count,
        )
        announced.append((event, novel.readers()[1:]))
        resources.audit_log().add(session, announced)

    novel = repo.create(
        owner_id, title, premise, chapter_count, members, announce, max_active_chapters
    )
    readers = novel.readers()
    resources.redis_client().sadd(resources.layout().readers(novel.id), *readers)
    resources.outbox_store().append_many(announced)
    with progress.acting_as(owner_id, session_id, novel_id=novel.id, workflow_id=novel.id):
        # The API never waits for results: do not subscribe to them (ignore_result).
        result = _app().send_task(
            "workers.create_novel", args=[novel.id], ignore_result=True, **_time_limits()
        )
    repo.set_task(novel.id, result.id)
    return repo.get(novel.id), result.id


def _time_limits(generations: int = 1) -> dict[str, Any]:
    # celery-types declares send_task's time limits int; Celery takes seconds as a float.
    return cast(dict[str, Any], limits(generations))


def list_novels(user_id: str) -> list[Novel]:
    """Novels the user owns or reads."""
    return resources.novels().list_readable(user_id)


def get_novel(novel_id: str, user_id: str) -> Novel:
    """One novel the user may read; NovelNotFound otherwise."""
    return resources.novels().get_readable(novel_id, user_id)


def list_invitations(user_id: str) -> list[Invitation]:
    """Novels the user was invited to and has not accepted, newest first."""
    return resources.novels().invitations(user_id)


def accept_invitation(novel_id: str, user_id: str, grant: Callable[[], None] | None = None) -> None:
    """The invited user becomes a reader (NovelNotFound when not invited). ``grant`` (the
    caller adding them to the novel's readers in Redis) runs before the membership commits."""
    resources.novels().accept(novel_id, user_id, grant)


def leave_novel(novel_id: str, user_id: str) -> bool:
    """Decline an invitation or stop reading; whether the user was a reader (then the caller
    revokes their access in Redis). NovelNotFound when neither invited nor a member."""
    return resources.novels().leave(novel_id, user_id)


def revise_chapter(
    novel_id: str, number: int, user_id: str, session_id: str | None, instructions: str
) -> str:
    """Start revising a chapter of the user's own novel; the task id."""
    novel = resources.novels().get(novel_id)
    if novel.owner_id != user_id or not 1 <= number <= novel.chapter_count:
        raise NovelNotFound(f"{novel_id}/{number}")
    # Not the novel's workflow: its overall bar is the creation's, finished or not.
    with progress.acting_as(user_id, session_id, novel_id=novel_id):
        result = _app().send_task(
            "workers.revise_chapter",
            args=[novel_id, number],
            kwargs={"instructions": instructions},
            ignore_result=True,
            **_time_limits(),
        )
    return str(result.id)


def revise_chapters(
    novel_id: str,
    numbers: Sequence[int],
    user_id: str,
    session_id: str | None,
    instructions: str,
) -> str:
    """Start revising several chapters of the user's own novel in one task, whose chapter
    updates reach the readers merged (R4.6); the task id. NovelNotFound for a novel not the
    user's own, UnknownChapters for numbers the novel does not have (nothing is queued then).
    """
    novel = resources.novels().get(novel_id)
    if novel.owner_id != user_id:
        raise NovelNotFound(novel_id)
    unknown = [n for n in numbers if not 1 <= n <= novel.chapter_count]
    if unknown:
        raise UnknownChapters(unknown, novel.chapter_count)
    # Not the novel's workflow: its overall bar is the creation's, finished or not.
    with progress.acting_as(user_id, session_id, novel_id=novel_id):
        result = _app().send_task(
            "workers.revise_chapters",
            args=[novel_id, list(numbers)],
            kwargs={"instructions": instructions},
            ignore_result=True,
            **_time_limits(len(numbers)),
        )
    return str(result.id)


def cancel_task(user_id: str, task_id: str) -> None:
    """Ask one of the user's tasks to stop (TaskNotFound for any other task).

    Running tasks stop at their next check, queued ones never start. Cancelling a novel's
    workflow task stops every step of that workflow and marks the novel cancelled.
    """
    snapshot = resources.progress_store().task_snapshot(user_id, task_id)
    if snapshot is None:
        raise TaskNotFound(task_id)
    # The flag holds who asked: the task's ``task.progress-cancelled`` names them.
    request_cancel(task_id, user_id)
    if snapshot.novel_id:
        novel = resources.novels().get(snapshot.novel_id)
        if novel.task_id == task_id:
            _stop_workflow(novel, user_id)
    _app().control.revoke(task_id)


def cancel_novel(user_id: str, novel_id: str) -> str:
    """Stop the workflow of one of the user's own novels (NovelNotFound for any other novel):
    its running steps stop at their next check, its queued ones as they start. The novel's
    status after the call (``cancelled``, or how it had already ended)."""
    novel = resources.novels().get(novel_id)
    if novel.owner_id != user_id:
        raise NovelNotFound(novel_id)
    return _stop_workflow(novel, user_id)


def _stop_workflow(novel: Novel, user_id: str) -> str:
    if novel.status in _ENDED and novel.status != "cancelled":
        return novel.status
    request_cancel(novel.id, user_id)
    # Only a novel still in progress: it may have ended meanwhile, or was cancelled before.
    if not move_novel(novel.id, "cancelled", IN_PROGRESS):
        ended = resources.novels().get(novel.id).status
        if ended != "cancelled":
            return ended
    # Also when cancelled before: a retry after this failed must still end the overall bar.
    progress.cancel_workflow(user_id, novel.id)
    return "cancelled"


def open_audit_log(database_url: str, encryption_keys: str, allow_dev_key: bool) -> AuditLog:
    """The audit log on a new engine (connects on first use); keys newest first, comma-separated.
    MissingAuditKeys when none is set and the public development key is not allowed."""
    keys = sealing_keys(encryption_keys, allow_dev_key)
    return AuditLog(make_sessions(make_engine(database_url)), Sealer(keys))


def send_journaled(batch: Sequence[Outgoing]) -> None:
    """Journal the important events of ``batch``, then push it (journal first: if the journal
    fails, nothing is pushed and the error propagates, so sending again is safe)."""
    writer = OutboxWriter(
        resources.outbox_store().inner, resources.journal(), journal_required=True
    )
    writer.append_many(batch)


def close() -> None:
    """Close the connections the functions above opened in this process."""
    resources.close()
