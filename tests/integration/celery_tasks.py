"""Tasks the integration tests run on a real worker."""

from __future__ import annotations

import time

from celery import Celery, Task, chain, chord, group

import progress
from progress import report_progress


def register(app: Celery) -> None:
    """Define the test tasks on ``app``."""

    @app.task(name="t.fifty_updates")
    @report_progress(estimated_seconds=2)
    def fifty_updates() -> dict[str, str]:
        for step in range(1, 51):
            progress.update(step * 2, f"step {step}", stage="drafting")
            time.sleep(0.036)
        return {"summary": "50 steps done"}

    @app.task(name="t.fails")
    @report_progress
    def fails() -> None:
        progress.update(10, "about to fail")
        raise ValueError("the premise is empty")

    @app.task(
        name="t.flaky",
        bind=True,
        autoretry_for=(ConnectionError,),
        max_retries=2,
        default_retry_delay=0.2,
        retry_backoff=False,
    )
    @report_progress
    def flaky(self: Task) -> str:
        progress.update(30, "calling the model")
        if self.request.retries == 0:
            raise ConnectionError("model endpoint reset the connection")
        return "ok on retry"

    @app.task(name="t.sleeps")
    @report_progress
    def sleeps(seconds: float) -> None:
        progress.update(1, "started sleeping")
        time.sleep(seconds)

    @app.task(name="t.step")
    @report_progress
    def step(previous: int | None = None) -> int:
        progress.update(50, "half way")
        return (previous or 0) + 1

    @app.task(name="t.spawns_child")
    @report_progress
    def spawns_child() -> str:
        return str(step.delay().id)

    @app.task(name="t.untracked")
    def untracked() -> str:
        return "no events for me"

    @app.task(name="t.chain_of_three")
    def chain_of_three() -> str:
        return str(chain(step.s(), step.s(), step.s()).delay().id)

    @app.task(name="t.quick")
    @report_progress(weight=1)
    def quick() -> str:
        return "ok"

    @app.task(name="t.heavy")
    @report_progress(weight=3)
    def heavy() -> str:
        progress.update(50, "half way")
        return "ok"

    @app.task(name="t.fails_in_chord")
    @report_progress
    def fails_in_chord() -> None:
        raise ValueError("chapter 2 has no plan")

    @app.task(name="t.builds_chord")
    @report_progress
    def builds_chord(width: int) -> str:
        """Tasks added while the workflow runs: a chord this task builds."""
        return str(chord(group(quick.si() for _ in range(width)), quick.si()).delay().id)
