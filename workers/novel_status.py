"""A novel's status follows how its workflow's steps end, whatever Celery could record.

    a step's run ends failed in this worker ─▶ fail_novel now   (progress.signals.run_ended)
    a step's error callback runs            ─▶ fail_novel       (mark_novel_failed)
    the watchdog declares a step lost       ─▶ reconcile_novels  (same beat run)
    the database was down for any of these  ─▶ reconcile_novels  (every watchdog run after)

``reconcile_novels`` fails an in-progress novel when one of its steps' latest outcome (its
Redis snapshot) is ``failed`` and that failure is newer than the novel's last change: a step
that ran again after the failure (a retry, a redelivered message) moves the novel on itself.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from progress.reporter import TaskRun
from progress.signals import run_ended
from progress.store import EventReader
from workers import resources
from workers.notify import announce_status
from workers.novels import NovelChange

log = logging.getLogger("workers.novel_status")

#: The tasks of a novel's creation workflow: one of them failing fails the novel.
WORKFLOW_STEPS = frozenset(
    {
        "workers.create_novel",
        "workers.generate_outline",
        "workers.generate_chapter",
        "workers.review_novel",
    }
)
IN_PROGRESS = ("queued", "outlining", "drafting", "reviewing")
#: Task snapshots of one owner the sweep reads (newest first).
SWEEP_TASKS_PER_OWNER = 500


def fail_novel(novel_id: str) -> bool:
    """Move the novel to ``failed`` if it is still in progress and tell its readers; True if
    it moved."""
    old = resources.novels().fail_if_in(novel_id, IN_PROGRESS)
    if old is None:
        return False
    announce_status(novel_id, old, "failed")
    return True


def reconcile_novels(store: EventReader) -> int:
    """Fail every in-progress novel a step of which failed after the novel last changed; how
    many were failed."""
    by_owner: dict[str, list[NovelChange]] = {}
    for novel in resources.novels().changed_in(IN_PROGRESS):
        by_owner.setdefault(novel.owner_id, []).append(novel)
    moved = 0
    for owner_id, novels in by_owner.items():
        failed_at: dict[str, datetime] = {}
        for task in store.recent_tasks(owner_id, SWEEP_TASKS_PER_OWNER):
            if task.status == "failed" and task.task_name in WORKFLOW_STEPS and task.novel_id:
                known = failed_at.get(task.novel_id, task.updated_at)
                failed_at[task.novel_id] = max(known, task.updated_at)
        for novel in novels:
            at = failed_at.get(novel.novel_id)
            if at is not None and novel.changed_before(at) and fail_novel(novel.novel_id):
                log.info("novel %s failed: one of its steps failed earlier", novel.novel_id)
                moved += 1
    return moved


def _on_run_ended(sender: str, run: TaskRun, outcome: str, **_: Any) -> None:
    novel_id = run.identity.novel_id if run.identity is not None else None
    if outcome != "failed" or sender not in WORKFLOW_STEPS or novel_id is None:
        return
    try:
        fail_novel(novel_id)
    except Exception:
        log.exception("could not fail novel %s now; the watchdog's sweep will", novel_id)


def connect_novel_status() -> None:
    """Connect the hook that fails a novel when one of its steps fails here (idempotent)."""
    run_ended.connect(_on_run_ended, weak=False, dispatch_uid="workers.novel_status")
