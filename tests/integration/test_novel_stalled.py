"""A novel whose workflow stopped without any step failing (its next message lost with Redis,
its worker gone between steps) is resumed by the watchdog: the writer gets their novel."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

import progress
from tests.integration.conftest import MakeWorkerStack
from workers import resources

pytestmark = pytest.mark.integration


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_a_novel_whose_chapters_are_written_but_whose_review_never_started_is_finished(
    worker_stack: MakeWorkerStack, user_id: str
) -> None:
    stack = worker_stack(
        15,
        12,
        WORKER_TOKENS_PER_CHAPTER="20",
        WORKER_WATCHDOG_SECONDS="0.5",
        PROGRESS_WATCHDOG_SECONDS="0.5",
        WORKER_NOVEL_RESUME_AFTER_SECONDS="2",
    )
    repo = resources.novels()
    novel_id = repo.create(user_id, "Adrift", "A chord whose callback never came", 2, []).id
    app = resources.celery_app()

    def send(name: str, *args: object) -> None:
        # As the API sends: as the owner, never waiting for (subscribing to) a result.
        with progress.acting_as(user_id, None, novel_id=novel_id, workflow_id=novel_id):
            app.send_task(name, args=[novel_id, *args], ignore_result=True)

    # The workflow as it stands when the chord's callback (the review) is lost: the outline
    # and every chapter ran through a real worker, and nothing more is queued.
    with stack.worker(concurrency=2):
        send("workers.generate_outline")
        assert wait_for(lambda: repo.get(novel_id).status == "drafting", 30)
        send("workers.generate_chapter", 1)
        send("workers.generate_chapter", 2)
        written = wait_for(
            lambda: all(c.status == "written" for c in repo.get(novel_id).chapters), 30
        )
        assert written, [c.status for c in repo.get(novel_id).chapters]
    assert repo.get(novel_id).status == "drafting"
    chapters = [(c.number, c.text) for c in repo.get(novel_id).chapters]

    stack.worker(beat=True)
    assert wait_for(lambda: repo.get(novel_id).status == "done", 30), repo.get(novel_id).status
    # Only the review ran: the chapters already written were kept, not written again.
    assert [(c.number, c.text) for c in repo.get(novel_id).chapters] == chapters
    # The resumed review reported to the writer like the steps before it.
    steps = resources.progress_store().recent_tasks(user_id, 50)
    ends = {(task.task_name, task.status) for task in steps}
    assert ("workers.review_novel", "completed") in ends, ends
