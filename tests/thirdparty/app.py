"""A Celery app of another team: it knows nothing of ``workers/``, and uses only ``progress``'s
public names, configured as the README says (``progress.install(app)``, settings from the
environment: ``REDIS_URL``, ``DATABASE_URL``, ``AUDIT_ENCRYPTION_KEYS``, ``PROGRESS_*``).

    celery -A tests.thirdparty.app:app worker --beat
    python -m tests.thirdparty.app count USER STEPS     # sends a task as USER, prints its id
"""

from __future__ import annotations

import os
import sys
import time

import redis
from celery import Celery

import progress

app = Celery(
    "thirdparty",
    broker=os.environ.get("THIRDPARTY_BROKER_URL", "redis://127.0.0.1:6379/5"),
    set_as_current=False,
)
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
)
progress.install(app)


def _cancel_requested(task_id: str) -> bool:
    # This app's own cancel flag (the app decides how a cancel is asked for).
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        return bool(client.exists(f"thirdparty:cancel:{task_id}"))
    finally:
        client.close()


@app.task(name="thirdparty.count", bind=True)
@progress.report_progress(estimated_seconds=3)
def count(self: object, steps: int, pause: float = 0.2) -> dict[str, str]:
    """Count to ``steps``, reporting each step; stops (cancelled) when asked to."""
    task_id = str(self.request.id)  # type: ignore[attr-defined]
    for step in range(1, steps + 1):
        if _cancel_requested(task_id):
            raise progress.Cancelled("cancelled by the user")
        progress.update(100 * step / steps, f"step {step} of {steps}", stage="counting")
        time.sleep(pause)
    return {"summary": f"counted to {steps}"}


def main(argv: list[str]) -> None:
    """Send ``count`` as a user: ``count USER STEPS [PAUSE]``; print the task id."""
    _, user, steps, *rest = argv
    with progress.acting_as(user):
        result = count.delay(int(steps), float(rest[0]) if rest else 0.2)
    sys.stdout.write(f"{result.id}\n")


if __name__ == "__main__":
    main(sys.argv[1:])
