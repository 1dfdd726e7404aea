"""A novel's status follows how its workflow's steps end, whatever Celery could record.

    a step's run ends failed in this worker ─▶ fail_novel now   (progress.signals.run_ended)
    a step's error callback runs            ─▶ end_novel_after_error (mark_novel_failed):
                                               cancelled if the writer cancelled a step
    the watchdog declares a step lost       ─▶ reconcile_novels  (same beat run)
    the database was down for any of these  ─▶ reconcile_novels  (every watchdog run after)
    no step runs and nothing changed for a  ─▶ resume_stalled_novels (every watchdog run)
    while (a message lost with Redis, a worker that died between steps)

``reconcile_novels`` fails an in-progress novel when one of its steps' latest outcome (its
Redis snapshot) is ``failed`` and that failure is newer than the novel's last change: a step
that ran again after the failure (a retry, a redelivered message) moves the novel on itself.

``resume_stalled_novels`` covers a workflow that stopped without any step failing: every step
it knows of ended (none running, retrying or stalled) and neither the novel, its chapters nor
its steps changed for the grace period. A novel being drafted or reviewed is resumed: its
unwritten chapters are written and the review runs (the writer gets their novel); one still
queued or outlining is failed (it has nothing worth keeping yet; the writer starts it again).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from progress.reporter import TaskRun
from progress.signals import run_ended
from progress.store import EventReader
from workers import resources
from workers.cancel_requests import askers
from workers.notify import announce_status
from workers.novels import IN_PROGRESS, NovelChange, NovelNotFound

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
#: Task snapshots of one owner the sweep reads (newest first).
SWEEP_TASKS_PER_OWNER = 500
#: A step in one of these is still going (or may come back): its novel is not stalled.
ACTIVE_STEP = frozenset({"running", "retrying", "stalled"})
#: Stalled in one of these, a novel is resumed (its outline is kept); in the others, failed.
RESUMABLE = ("drafting", "reviewing")

#: ``resume(novel_id, chapter_numbers)``: send the rest of a novel's workflow (the chapters
#: given, then the review).
Resume = Callable[[str, Sequence[int]], None]


def fail_novel(novel_id: str) -> bool:
    """Move the novel to ``failed`` if it is still in progress and tell its readers; True if
    it moved."""
    return _end_novel(novel_id, "failed")


def _end_novel(novel_id: str, status: str) -> bool:
    old = resources.novels().move_if_in(novel_id, IN_PROGRESS, status)
    if old is None:
        return False
    announce_status(novel_id, old, status)
    return True


def end_novel_after_error(novel_id: str, store: EventReader) -> bool:
    """A step of the novel ended without success: the novel ends ``cancelled`` when the writer
    cancelled one of its steps and none failed (cancelling a chapter stops the workflow: its
    review needs every chapter), else ``failed``. True if it moved.

    Celery sends a step's error callback before the step's own end is stored, so a step the
    writer cancelled may still read ``running``: its cancel request (``rt:cancel:<task>``)
    says what it is becoming."""
    try:
        owner_id = resources.novels().get(novel_id).owner_id
    except NovelNotFound:
        return False
    steps = [
        task
        for task in store.recent_tasks(owner_id, SWEEP_TASKS_PER_OWNER)
        if task.novel_id == novel_id and task.task_name in WORKFLOW_STEPS
    ]
    if any(task.status == "failed" for task in steps):
        return _end_novel(novel_id, "failed")
    targets = [novel_id, *(task.task_id for task in steps)]
    asked = any(asker is not None for asker in askers(targets))
    cancelled = asked or any(task.status == "cancelled" for task in steps)
    return _end_novel(novel_id, "cancelled" if cancelled else "failed")


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


def resume_stalled_novels(
    store: EventReader, grace_seconds: float, resume: Resume
) -> dict[str, int]:
    """Resume (or fail) every in-progress novel whose workflow stopped: no step of it is
    active and nothing of it changed for ``grace_seconds``; how many of each."""
    repo = resources.novels()
    now = datetime.now(UTC)
    grace = timedelta(seconds=grace_seconds)
    by_owner: dict[str, list[NovelChange]] = {}
    for novel in repo.changed_in(IN_PROGRESS):
        if not novel.changed_before(now - grace):
            continue
        by_owner.setdefault(novel.owner_id, []).append(novel)
    done = {"resumed": 0, "failed": 0}
    for owner_id, novels in by_owner.items():
        active: set[str] = set()
        last_step: dict[str, datetime] = {}
        for task in store.recent_tasks(owner_id, SWEEP_TASKS_PER_OWNER):
            if task.task_name not in WORKFLOW_STEPS or not task.novel_id:
                continue
            if task.status in ACTIVE_STEP:
                active.add(task.novel_id)
            known = last_step.get(task.novel_id, task.updated_at)
            last_step[task.novel_id] = max(known, task.updated_at)
        for change in novels:
            stepped = last_step.get(change.novel_id)
            if change.novel_id in active or (stepped is not None and now - stepped < grace):
                continue
            full = repo.get(change.novel_id)
            if any(not _changed_before(c.updated_at, now - grace) for c in full.chapters):
                continue
            # Several workers' beats may run this sweep: only the one whose claim lands acts.
            if not repo.claim_stalled(change.novel_id, change.status, change.updated_at):
                continue
            if change.status in RESUMABLE:
                missing = [c.number for c in full.chapters if c.status != "written"]
                resume(change.novel_id, missing)
                log.warning(
                    "novel %s was %s with no step running for %g s: resumed (chapters %s, "
                    "then the review)",
                    change.novel_id,
                    change.status,
                    grace_seconds,
                    missing or "none",
                )
                done["resumed"] += 1
            elif fail_novel(change.novel_id):
                log.warning(
                    "novel %s failed: %s with no step running for %g s (its workflow stopped)",
                    change.novel_id,
                    change.status,
                    grace_seconds,
                )
                done["failed"] += 1
    return done


def _changed_before(at: datetime, moment: datetime) -> bool:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)) < moment


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
