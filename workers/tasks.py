"""AI creation tasks. Thin: load, generate through the LLM client, store, tell the readers.

    create_novel ─▶ chain( generate_outline,
                           chord( group(generate_chapter × N),  review_novel ) )
                    every step: on error ─▶ mark_novel_failed
    watchdog (a stalled novel) ─▶ chord( group(its unwritten chapters), review_novel )

Progress is the share of the target tokens produced so far; a writer's cancel request is
checked between tokens. Workflow stages go out as ``workflow.status-changed``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, TypedDict

from celery import Celery, Task, chain, chord, group, shared_task
from celery.canvas import Signature
from celery.utils.time import get_exponential_backoff_interval

import progress
from progress.errors import StoreUnavailable
from workers import resources
from workers.batching import ChapterUpdateBatcher
from workers.cancel_requests import askers
from workers.llm_errors import TransientLLMError
from workers.notify import chapters_updated, move_novel, save_chapter_and_announce
from workers.novel_status import end_novel_after_error, reconcile_novels, resume_stalled_novels
from workers.pipeline import percent, plan_chapters, summarize

log = logging.getLogger("workers.tasks")

_CANCEL_CHECK_EVERY = 10


class _RetryOptions(TypedDict):
    """shared_task's retry options for the steps that call the text generator."""

    autoretry_for: tuple[type[Exception], ...]
    retry_backoff: int
    retry_backoff_max: int
    retry_jitter: bool
    max_retries: int


_RETRY: _RetryOptions = {
    "autoretry_for": (TransientLLMError,),
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 3,
}


def _generate(
    task_id: str,
    novel_id: str,
    prompt: str,
    tokens: int,
    stage: str,
    message: str,
    *,
    offset: int = 0,
    total: int | None = None,
) -> Iterator[str]:
    """Tokens from the LLM, reporting progress (``offset + done`` of ``total`` tokens) and
    honouring cancel requests as they come."""
    targets = [task_id, novel_id]
    deadline = time.monotonic() + resources.settings().soft_time_limit_seconds
    for done, token in enumerate(resources.llm().stream(prompt, tokens), start=1):
        if time.monotonic() > deadline:
            raise GenerationTimeout(
                f"generation took longer than {resources.settings().soft_time_limit_seconds:g} s"
            )
        if done % _CANCEL_CHECK_EVERY == 0 and (asker := _cancel_requested(targets)) is not None:
            raise progress.Cancelled("cancelled by the writer", by=asker or None)
        progress.update(percent(offset + done, total or tokens), message, stage=stage)
        yield token


def _cancel_requested(target_ids: list[str]) -> str | None:
    """Who asked to stop (the first request's user id; "" when unknown), or None when nobody
    did. None while Redis is unreachable: the writer cannot have asked meanwhile, and the
    task's end must not be lost to a failed check."""
    try:
        asked = askers(target_ids)
    except StoreUnavailable as exc:
        log.warning("cancel requests unreadable (%s); going on", exc)
        return None
    return next((asker for asker in asked if asker is not None), None)


class GenerationTimeout(TimeoutError):
    """The text took longer than the task's time limit to generate."""

    retryable = True


class TimeLimits(TypedDict):
    """Celery's per-message time limits, in seconds."""

    soft_time_limit: float
    time_limit: float


def limits(generations: int = 1) -> TimeLimits:
    """Per-message time limits of a task that generates ``generations`` texts one after the
    other (each has the soft limit): every pool honours those (worker-wide ones need
    prefork's timer and are easy to miss)."""
    soft = resources.settings().soft_time_limit_seconds * generations
    return {"soft_time_limit": soft, "time_limit": soft + 30}


def _step(app: Celery, name: str, novel_id: str, *args: Any) -> Signature:
    """One workflow step of the novel; its failure fails the novel."""
    errback = app.signature("workers.mark_novel_failed", args=(novel_id,), immutable=True)
    return app.signature(name, args=(novel_id, *args), immutable=True, **limits()).on_error(errback)


def _chapters_then_review(app: Celery, novel_id: str, numbers: Sequence[int]) -> Signature:
    """The chapters given, in parallel, then the review (just the review if none)."""
    review = _step(app, "workers.review_novel", novel_id)
    if not numbers:
        return review
    chapters = [_step(app, "workers.generate_chapter", novel_id, n) for n in numbers]
    return chord(group(chapters), review)


@shared_task(name="workers.create_novel", bind=True)
@progress.report_progress(estimated_seconds=2)
def create_novel(self: Task[Any, Any], novel_id: str) -> dict[str, str]:
    """Start the novel's workflow: outline, then chapters in parallel, then review."""
    novel = resources.novels().get(novel_id)
    workflow = chain(
        _step(self.app, "workers.generate_outline", novel_id),
        _chapters_then_review(self.app, novel_id, range(1, novel.chapter_count + 1)),
    )
    progress.update(50, "Starting the workflow", stage="queued")
    workflow.apply_async()
    return {"summary": f"Workflow of {novel.chapter_count} chapters started"}


def resume_novel(novel_id: str, numbers: Sequence[int]) -> None:
    """Send the rest of a stalled novel's workflow: the chapters given, then the review, as
    its owner, so their progress reaches the writer and the novel's overall bar."""
    owner_id = resources.novels().get(novel_id).owner_id
    with progress.acting_as(owner_id, None, novel_id=novel_id, workflow_id=novel_id):
        _chapters_then_review(resources.celery_app(), novel_id, numbers).apply_async()


@shared_task(name="workers.generate_outline", bind=True, **_RETRY)
@progress.report_progress(estimated_seconds=5)
def generate_outline(self: Any, novel_id: str) -> dict[str, str]:
    """Outline the novel: one plan per chapter."""
    repo = resources.novels()
    novel = repo.get(novel_id)
    move_novel(novel_id, "outlining")
    target = novel.chapter_count * max(10, resources.settings().tokens_per_chapter // 3)
    prompt = f"Outline a novel of {novel.chapter_count} chapters: {novel.premise}"
    words = list(
        _generate(self.request.id, novel_id, prompt, target, "outlining", "Outlining the novel")
    )
    plans = plan_chapters(words, novel.chapter_count)
    repo.save_outline(novel_id, " ".join(words), plans)
    move_novel(novel_id, "drafting")
    return {"summary": f"Outline of {len(plans)} chapters"}


def _write_chapter(task_id: str, novel_id: str, number: int, prompt: str, stage: str) -> str:
    """Generate a chapter's text, store it with its summary, tell the readers; the text."""
    target = resources.settings().tokens_per_chapter
    verb = "Writing" if stage == "drafting" else "Revising"
    words = _generate(task_id, novel_id, prompt, target, stage, f"{verb} chapter {number}")
    text = " ".join(words)
    save_chapter_and_announce(novel_id, number, text, summarize(text))
    return text


@shared_task(name="workers.generate_chapter", bind=True, **_RETRY)
@progress.report_progress(estimated_seconds=10)
def generate_chapter(self: Any, novel_id: str, number: int) -> dict[str, str]:
    """Write one chapter from its plan."""
    repo = resources.novels()
    chapter = repo.chapter(novel_id, number)
    repo.set_chapter_status(novel_id, number, "drafting")
    prompt = f"Write {chapter.title}. Plan: {chapter.plan}"
    text = _write_chapter(self.request.id, novel_id, number, prompt, "drafting")
    return {"summary": f"Chapter {number} written ({len(text.split())} words)"}


@shared_task(name="workers.review_novel", bind=True, **_RETRY)
@progress.report_progress(estimated_seconds=3)
def review_novel(self: Any, novel_id: str) -> dict[str, str]:
    """Read the whole draft once more, then mark the novel done."""
    novel = resources.novels().get(novel_id)
    move_novel(novel_id, "reviewing")
    prompt = "Review: " + " ".join(c.summary for c in novel.chapters)
    target = max(10, resources.settings().tokens_per_chapter // 4) * novel.chapter_count
    for _ in _generate(
        self.request.id, novel_id, prompt, target, "reviewing", "Reviewing the draft"
    ):
        pass
    move_novel(novel_id, "done")
    return {"summary": f"{novel.title}: {novel.chapter_count} chapters done"}


@shared_task(name="workers.revise_chapter", bind=True, **_RETRY)
@progress.report_progress(estimated_seconds=10)
def revise_chapter(self: Any, novel_id: str, number: int, instructions: str = "") -> dict[str, str]:
    """Rewrite one chapter following the writer's instructions."""
    chapter = resources.novels().chapter(novel_id, number)
    prompt = f"Revise {chapter.title} ({instructions or 'tighten the prose'}): {chapter.text}"
    _write_chapter(self.request.id, novel_id, number, prompt, "revising")
    return {"summary": f"Chapter {number} revised"}


@shared_task(name="workers.revise_chapters", bind=True, **_RETRY)
@progress.report_progress(estimated_seconds=30)
def revise_chapters(
    self: Any, novel_id: str, numbers: list[int], instructions: str = ""
) -> dict[str, str]:
    """Revise several chapters in one task: one progress bar, and their updates merged into
    one ``content.chapter-updated`` per merge window, naming every chapter revised in it
    (R4.6). Chapters saved before a failure or a cancel are still announced."""
    repo = resources.novels()
    batcher = ChapterUpdateBatcher(resources.settings().batch_merge_window_seconds)
    target = max(10, resources.settings().tokens_per_chapter // 2)
    try:
        for index, number in enumerate(numbers):
            chapter = repo.chapter(novel_id, number)
            try:
                text = " ".join(
                    _generate(
                        self.request.id,
                        novel_id,
                        f"Revise {chapter.title} ({instructions or 'tighten the prose'}): "
                        f"{chapter.text}",
                        target,
                        "revising",
                        f"Revising chapter {number} ({index + 1} of {len(numbers)})",
                        offset=index * target,
                        total=target * len(numbers),
                    )
                )
            except TransientLLMError as exc:
                # The chapters before this one are revised and announced: the retry takes
                # only the rest, so none is revised twice.
                raise self.retry(
                    args=[novel_id, numbers[index:]],
                    kwargs={"instructions": instructions},
                    exc=exc,
                    countdown=get_exponential_backoff_interval(
                        _RETRY["retry_backoff"],
                        self.request.retries,
                        _RETRY["retry_backoff_max"],
                        full_jitter=_RETRY["retry_jitter"],
                    ),
                ) from exc
            repo.save_chapter(novel_id, number, text, summarize(text))
            for due in batcher.add(number):
                chapters_updated(novel_id, due)
    finally:
        for due in batcher.flush():
            chapters_updated(novel_id, due)
    return {"summary": f"{len(numbers)} chapters revised"}


_watchdog_running = threading.Lock()


@shared_task(name="workers.watchdog")
def watchdog() -> dict[str, int]:
    """Celery beat: in-progress novels one of whose steps failed are failed
    (``reconcile_novels``), and those whose workflow stopped are resumed or failed
    (``resume_stalled_novels``). Tasks whose heartbeats stopped are the progress library's
    watchdog's (``progress.watchdog``, added by ``progress.install``).

    Runs in one process never overlap.
    """
    if not _watchdog_running.acquire(blocking=False):
        return {"novels_failed": 0, "novels_resumed": 0}
    try:
        store = resources.progress_store()
        failed = reconcile_novels(store)
        stalled = resume_stalled_novels(
            store, resources.settings().novel_resume_after_seconds, resume_novel
        )
        return {"novels_failed": failed + stalled["failed"], "novels_resumed": stalled["resumed"]}
    finally:
        _watchdog_running.release()


@shared_task(name="workers.mark_novel_failed")
def mark_novel_failed(novel_id: str) -> None:
    """Error callback of every workflow step: the novel ends failed, or cancelled when the
    writer cancelled a step (unless it ended)."""
    end_novel_after_error(novel_id, resources.progress_store())
