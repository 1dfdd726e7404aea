"""Celery signal receivers that turn a task's lifecycle into progress events.

Receivers are connected once (``weak=False``, a ``dispatch_uid`` each), act only for tracked
tasks (decorated with ``report_progress`` or named in ``PROGRESS_TRACKED_TASKS``), and never
raise into Celery: a failing receiver is logged and counted in ``receiver_errors``.

    before_task_publish  identity context var  ->  message header ``progress_identity``
    after_task_publish   a tracked task of a workflow was sent: counted (progress.workflow)
    task_prerun          header -> identity context var; run context var; ``started``
    task_success         ``completed``          task_failure  ``failed``
    task_retry           ``retrying``           task_revoked  ``cancelled`` (parent process)
    task_postrun         a run none of the above ended (Celery could not record its end,
                         e.g. its result store was down): ``failed``; then forget the run and
                         wait (bounded) until its events are stored

``task_postrun`` fires even when storing the result raised, so every run that returned or
raised ends here, and its heartbeats stop. :data:`run_ended` tells the host application how
each run of this process ended (``completed``, ``failed``, ``retrying`` or ``cancelled``).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, ParamSpec

from celery import Celery, Task, signals
from celery.utils.dispatch import Signal

from progress.errors import Cancelled
from progress.failures import advise, summarize_result
from progress.identity import HEADER, Identity, current_identity
from progress.reporter import ProgressSpec, TaskRun, current_run
from progress.runtime import get_reporter, get_settings
from progress.workflow import QueuedTask, TaskQueued

log = logging.getLogger("progress.signals")

P = ParamSpec("P")

receiver_errors = 0

#: Sent (sender: the task name) after a run of this process ended, with ``run`` (the
#: :class:`~progress.reporter.TaskRun`) and ``outcome``: ``completed``, ``failed``,
#: ``retrying`` or ``cancelled``. Sent from the task's thread; receivers must not raise.
run_ended = Signal(name="progress_run_ended", providing_args=["run", "outcome"])
_connected = False
_apps: list[Celery] = []
_connect_lock = threading.Lock()


def _never_raise(receiver: Callable[P, None]) -> Callable[P, None]:
    @functools.wraps(receiver)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        global receiver_errors
        try:
            receiver(*args, **kwargs)
        except Exception:
            receiver_errors += 1
            log.exception("progress receiver %s failed", receiver.__name__)

    return guarded


def _spec(task: Any) -> ProgressSpec | None:
    spec = getattr(getattr(task, "run", None), "__progress__", None)
    if isinstance(spec, ProgressSpec):
        return spec
    if getattr(task, "name", None) in get_settings().tracked_tasks:
        return ProgressSpec()
    return None


def watch_app(app: Celery) -> None:
    """Let the publish receiver find ``app``'s tasks by name (``install`` calls this): a
    workflow counts a task when it is sent only if the task is known to report progress."""
    with _connect_lock:
        if all(known is not app for known in _apps):
            _apps.append(app)


def _spec_of_name(name: str) -> ProgressSpec | None:
    for app in list(_apps):
        task = app.tasks.get(name)
        if task is not None:
            return _spec(task)
    return ProgressSpec() if name in get_settings().tracked_tasks else None


def _identity_of(request: Any) -> Identity | None:
    value = getattr(request, HEADER, None)
    if value is None and isinstance(getattr(request, "headers", None), dict):
        value = request.headers.get(HEADER)
    return Identity.from_header(value)


@_never_raise
def _on_publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
    identity = current_identity.get()
    if identity is not None and headers is not None and HEADER not in headers:
        headers[HEADER] = identity.to_header()


@_never_raise
def _on_published(
    sender: str | None = None, headers: dict[str, Any] | None = None, **_: Any
) -> None:
    if not headers or sender is None:
        return
    identity = Identity.from_header(headers.get(HEADER))
    task_id = headers.get("id")
    spec = _spec_of_name(sender)
    if identity is None or identity.workflow_id is None or spec is None or not task_id:
        return  # an untracked task reports no end, so it is not counted
    get_reporter().submit(
        TaskQueued(
            user_id=identity.user_id,
            workflow_id=identity.workflow_id,
            novel_id=identity.novel_id,
            tasks=[QueuedTask(task_id=task_id, task_name=sender, weight=spec.weight)],
        )
    )


@_never_raise
def _on_prerun(task_id: str, task: Task[Any, Any], **_: Any) -> None:
    identity = _identity_of(task.request)
    spec = _spec(task)
    run = None
    if spec is not None:
        run = TaskRun(
            task_id=task_id,
            task_name=task.name,
            identity=identity,
            attempt=_attempt(task.request),
            estimated_seconds=spec.estimated_seconds,
            redelivered=_redelivered(task.request),
        )
    current_identity.set(identity)
    current_run.set(run)
    if run is not None:
        get_reporter().start(run)


def _redelivered(request: Any) -> bool:
    delivery = getattr(request, "delivery_info", None) or {}
    return bool(delivery.get("redelivered"))


def _attempt(request: Any) -> int:
    # A message redelivered after its worker was lost (acks_late) is one more attempt.
    return (request.retries or 0) + 1 + (1 if _redelivered(request) else 0)


def _ended(run: TaskRun, outcome: str) -> None:
    global receiver_errors
    # Celery's Signal.send logs a failing receiver and returns its exception.
    responses = run_ended.send(sender=run.task_name, run=run, outcome=outcome)
    receiver_errors += sum(isinstance(response, Exception) for _, response in responses)


def _run_of(task_id: str | None) -> TaskRun | None:
    run = current_run.get()
    return run if run is not None and run.task_id == task_id else None


@_never_raise
def _on_success(sender: Task[Any, Any], result: Any = None, **_: Any) -> None:
    run = _run_of(sender.request.id)
    if run is not None:
        get_reporter().completed(run, summarize_result(result))
        _ended(run, "completed")


@_never_raise
def _on_failure(task_id: str, exception: BaseException, **_: Any) -> None:
    run = _run_of(task_id)
    if run is not None and isinstance(exception, Cancelled):
        get_reporter().cancelled(run, exception.reason, exception.by)
        _ended(run, "cancelled")
    elif run is not None:
        advice = advise(exception)
        get_reporter().failed(
            run, advice.error_type, advice.message, advice.retryable, advice.suggestion
        )
        _ended(run, "failed")


@_never_raise
def _on_retry(request: Any, reason: Any = None, **_: Any) -> None:
    run = _run_of(getattr(request, "id", None))
    if run is None:
        return
    cause = getattr(reason, "exc", None) or reason
    advice = advise(cause) if isinstance(cause, BaseException) else None
    when = getattr(reason, "when", None)
    if isinstance(when, datetime):
        when = max(0.0, (when - datetime.now(when.tzinfo)).total_seconds())
    get_reporter().retrying(
        run,
        advice.error_type if advice else "Retry",
        advice.message if advice else str(reason or "retrying"),
        float(when) if isinstance(when, int | float) else None,
    )
    _ended(run, "retrying")


@_never_raise
def _on_revoked(request: Any, terminated: bool = False, expired: bool = False, **kw: Any) -> None:
    task = kw.get("sender")
    if task is None or _spec(task) is None:
        return
    identity = _identity_of(request)
    run = TaskRun(task_id=request.id, task_name=task.name, identity=identity)
    reason = "expired" if expired else ("terminated" if terminated else "cancelled")
    reporter = get_reporter()
    reporter.cancelled(run, reason)
    reporter.flush()


@_never_raise
def _on_postrun(**_: Any) -> None:
    # Worker threads run one task at a time and start from nothing: clear, don't reset (a
    # retry of the same task id may already run elsewhere, so ids cannot key the state).
    run = current_run.get()
    current_run.set(None)
    current_identity.set(None)
    if run is None:
        return
    if get_reporter().unrecorded(run):
        log.warning("the end of %s[%s] could not be recorded: failed", run.task_name, run.task_id)
        _ended(run, "failed")
    if run.identity is not None:
        get_reporter().flush()


def connect_signals() -> None:
    """Connect the receivers (idempotent; safe to call from every decorated task)."""
    global _connected
    with _connect_lock:
        if _connected:
            return
        pairs: list[tuple[Signal, Callable[..., None]]] = [
            (signals.before_task_publish, _on_publish),
            (signals.after_task_publish, _on_published),
            (signals.task_prerun, _on_prerun),
            (signals.task_success, _on_success),
            (signals.task_failure, _on_failure),
            (signals.task_retry, _on_retry),
            (signals.task_revoked, _on_revoked),
            (signals.task_postrun, _on_postrun),
        ]
        for signal, receiver in pairs:
            signal.connect(receiver, weak=False, dispatch_uid=f"progress.{receiver.__name__}")
        _connected = True
