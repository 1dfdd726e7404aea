"""The reporter: turns task lifecycle and ``update()`` calls into throttled events.

One :class:`Reporter` per process (see ``progress.runtime``). It keeps the runs of the tasks
executing in this process, throttles their updates, sends heartbeats for them, and hands every
event to the :class:`~progress.pump.EventPump`. Event construction is deferred until an update
actually leaves the throttle, so a throttled ``update()`` costs a dict lookup and a comparison.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from progress.errors import NotInTask
from progress.events import (
    EventEnvelope,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskHeartbeat,
    TaskRetrying,
    TaskStarted,
    TaskUpdated,
)
from progress.identity import Identity
from progress.pump import EventPump
from progress.settings import ProgressSettings
from progress.store import EventWriter
from progress.throttle import ProgressThrottle
from progress.workflow import absorb

log = logging.getLogger("progress.reporter")

F = TypeVar("F", bound=Callable[..., Any])

_Update = tuple[str, str | None, dict[str, Any]]  # message, stage, details


@dataclass(frozen=True, slots=True)
class ProgressSpec:
    """What ``report_progress`` recorded about a task function."""

    estimated_seconds: float | None = None
    #: The task's share of its workflow's percent (default 1; e.g. its estimated seconds).
    weight: float = 1.0


@dataclass(slots=True, eq=False)
class TaskRun:
    """One execution (attempt) of a reporting task in this process."""

    task_id: str
    task_name: str
    identity: Identity | None
    attempt: int = 1
    estimated_seconds: float | None = None
    started_at: float = field(default_factory=time.monotonic)
    last_percent: float = 0.0
    reporter: Reporter | None = None
    #: The broker delivered this message again: an earlier run of it stopped unfinished.
    redelivered: bool = False
    #: A terminal or retrying event was queued for this run: nothing more is sent for it.
    ended: bool = False

    def envelope(self) -> dict[str, Any]:
        """Envelope fields shared by every event of this run."""
        assert self.identity is not None
        return {
            "user_id": self.identity.user_id,
            "session_id": self.identity.session_id,
            "novel_id": self.identity.novel_id,
            "workflow_id": self.identity.workflow_id,
            "task_id": self.task_id,
        }

    def elapsed(self) -> float:
        """Seconds since this run started."""
        return time.monotonic() - self.started_at


REDELIVERED_MESSAGE = "The previous run of this task stopped before it finished; running it again"
UNRECORDED_MESSAGE = (
    "This step ended while the task queue was unreachable, so its outcome could not be recorded"
)
UNRECORDED_SUGGESTION = "Start it again once the service is back; what was saved is kept."

current_run: ContextVar[TaskRun | None] = ContextVar("progress_run", default=None)


@overload
def report_progress(fn: F, *, estimated_seconds: float | None = None, weight: float = 1.0) -> F: ...


@overload
def report_progress(
    fn: None = None, *, estimated_seconds: float | None = None, weight: float = 1.0
) -> Callable[[F], F]: ...


def report_progress(
    fn: F | None = None, *, estimated_seconds: float | None = None, weight: float = 1.0
) -> F | Callable[[F], F]:
    """Mark a Celery task function as reporting progress.

    Put it below ``@app.task``. Started, completed, failed, retrying and cancelled events are
    then sent for the task, and ``progress.update()`` works inside it::

        @app.task(bind=True)
        @report_progress(estimated_seconds=30)
        def draft_chapter(self, chapter_id): ...

    ``weight`` is the task's share of its workflow's percent (every task weighs 1 unless it
    says otherwise, for example by its estimated seconds).
    """
    if weight <= 0:
        raise ValueError(f"weight must be positive, got {weight}")

    def mark(func: F) -> F:
        from progress.signals import connect_signals

        func.__progress__ = ProgressSpec(estimated_seconds, weight)  # type: ignore[attr-defined]
        connect_signals()
        return func

    return mark(fn) if fn is not None else mark


class Reporter:
    """Per-process progress state: running tasks, throttle, heartbeats, and the sender."""

    def __init__(
        self,
        settings: ProgressSettings,
        writer_factory: Callable[[], EventWriter],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._throttle: ProgressThrottle[_Update] = ProgressThrottle(
            settings.throttle_seconds, clock
        )
        self._runs: dict[str, TaskRun] = {}
        self._next_heartbeat = clock() + settings.heartbeat_seconds
        self._warned_anonymous: set[str] = set()
        self.throttled = 0
        self.pump = EventPump(
            writer_factory,
            self.tick,
            retry_seconds=settings.send_retry_seconds,
            max_queued=settings.max_queued_events,
            absorb=absorb,
        )

    def start(self, run: TaskRun) -> None:
        """A run began: remember it for heartbeats and send ``started``."""
        if not self._deliverable(run):
            return
        run.reporter = self
        with self._lock:
            self._throttle.forget(run.task_id)
            self._runs[run.task_id] = run
            if run.redelivered:
                # The earlier run may already show as failed (the watchdog declared it lost):
                # a new run of the same task never follows a failure without ``retrying``.
                self.pump.submit(
                    TaskRetrying(
                        **run.envelope(),
                        error_type="WorkerLost",
                        message=REDELIVERED_MESSAGE,
                        attempt=max(1, run.attempt - 1),
                        retry_in_seconds=0,
                    )
                )
            self.pump.submit(
                TaskStarted(
                    **run.envelope(),
                    task_name=run.task_name,
                    estimated_seconds=run.estimated_seconds,
                    attempt=run.attempt,
                )
            )

    def progress(
        self, run: TaskRun, percent: float, message: str, stage: str | None, details: dict[str, Any]
    ) -> None:
        """Offer an update to the throttle; send it now or hold it for the window's end."""
        with self._lock:
            was_holding = self._throttle.holding(run.task_id)
            released = self._throttle.offer(run.task_id, percent, (message, stage, details))
            if released is None:
                self.throttled += 1
                if not was_holding:
                    self.pump.wake()  # a new deadline: the pump may be asleep until a later one
                return
            self._send_update(run, *released)

    def _send_update(self, run: TaskRun, percent: float, update: _Update) -> None:
        message, stage, details = update
        run.last_percent = percent
        self.pump.submit(
            TaskUpdated(
                **run.envelope(), percent=percent, message=message, stage=stage, details=details
            )
        )

    def completed(self, run: TaskRun, result_summary: str | None) -> None:
        """Send ``completed`` after any held update."""
        self._finish(
            run,
            lambda: TaskCompleted(
                **run.envelope(), result_summary=result_summary, duration_seconds=run.elapsed()
            ),
        )

    def failed(
        self, run: TaskRun, error_type: str, message: str, retryable: bool, suggestion: str
    ) -> None:
        """Send ``failed`` after any held update."""
        self._finish(
            run,
            lambda: TaskFailed(
                **run.envelope(),
                error_type=error_type,
                message=message,
                retryable=retryable,
                retry_suggestion=suggestion,
                attempt=run.attempt,
            ),
        )

    def retrying(self, run: TaskRun, error_type: str, message: str, retry_in: float | None) -> None:
        """Send ``retrying``; the next attempt is a new run starting from 0%."""
        self._finish(
            run,
            lambda: TaskRetrying(
                **run.envelope(),
                error_type=error_type,
                message=message,
                attempt=run.attempt,
                retry_in_seconds=retry_in,
            ),
        )

    def cancelled(self, run: TaskRun, reason: str, by: str | None = None) -> None:
        """Send ``cancelled`` (also for runs of other processes: revocation happens here);
        ``by`` is the user who asked for it, when known."""
        self._finish(run, lambda: TaskCancelled(**run.envelope(), reason=reason, cancelled_by=by))

    def unrecorded(self, run: TaskRun) -> bool:
        """End a run Celery could not record the end of (its result store was unreachable, so
        neither success, failure nor retry was signalled): send ``failed``, stop its heartbeats.

        False if the run had already ended. The workflow's next steps depend on that record, so
        the run counts as failed even when its body returned.
        """
        if run.ended:
            return False
        self.failed(run, "ResultNotRecorded", UNRECORDED_MESSAGE, True, UNRECORDED_SUGGESTION)
        return True

    def _finish(self, run: TaskRun, build: Callable[[], EventEnvelope]) -> None:
        with self._lock:
            run.ended = True
            # With a threads pool an immediate retry's next attempt can start before this
            # attempt finishes: the task's state then belongs to the newer run, not to us.
            current = self._runs.get(run.task_id) in (run, None)
            if current:
                self._runs.pop(run.task_id, None)
            if run.identity is None:
                return
            if current:
                held = self._throttle.flush(run.task_id)
                if held is not None:
                    self._send_update(run, *held)
                self._throttle.forget(run.task_id)
            self.pump.submit(build())

    def tick(self) -> float | None:
        """Release held updates whose window closed and send due heartbeats; next deadline."""
        with self._lock:
            for task_id, percent, update in self._throttle.due():
                run = self._runs.get(str(task_id))
                if run is not None:
                    self._send_update(run, percent, update)
            now = self._clock()
            if now >= self._next_heartbeat:
                self._next_heartbeat = now + self.settings.heartbeat_seconds
                for run in self._runs.values():
                    self.pump.submit(
                        TaskHeartbeat(
                            **run.envelope(),
                            elapsed_seconds=run.elapsed(),
                            last_percent=run.last_percent,
                        )
                    )
            deadlines = [self._next_heartbeat] if self._runs else []
            if (held := self._throttle.next_deadline()) is not None:
                deadlines.append(held)
            return min(deadlines, default=None)

    def submit(self, event: EventEnvelope, recipients: Sequence[str] = ()) -> None:
        """Queue any event for sending from the background thread."""
        self.pump.submit(event, recipients)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued event is stored; False on timeout."""
        return self.pump.flush(self.settings.flush_timeout_seconds if timeout is None else timeout)

    def running(self) -> list[TaskRun]:
        """Runs of this process that have not ended."""
        with self._lock:
            return list(self._runs.values())

    def _deliverable(self, run: TaskRun) -> bool:
        if run.identity is not None:
            return True
        if run.task_name not in self._warned_anonymous:
            self._warned_anonymous.add(run.task_name)
            log.warning(
                "task %s runs without an identity (publish it inside progress.acting_as); "
                "its progress events are not delivered to anyone",
                run.task_name,
            )
        return False


def update(percent: float, message: str = "", *, stage: str | None = None, **details: Any) -> None:
    """Report progress of the current task: ``percent`` 0..100, a message, an optional stage.

    Throttled to one event per task per second (the last value of a burst is sent when the
    window closes). Raises :class:`~progress.errors.NotInTask` outside a reporting task.
    """
    run = current_run.get()
    if run is None:
        raise NotInTask(
            "progress.update() called outside a task decorated with @report_progress "
            "(or named in PROGRESS_TRACKED_TASKS)"
        )
    if not 0 <= percent <= 100:
        raise ValueError(f"percent must be within 0..100, got {percent}")
    if run.reporter is not None:  # None: the task acts for no one, so there is nothing to send
        run.reporter.progress(run, percent, message, stage, details)
