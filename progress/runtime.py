"""The process-wide reporter and store, created lazily and recreated after ``fork``.

Nothing connects at import. The first event builds the reporter from ``ProgressSettings()``
(the environment) unless :func:`configure` was called; Celery's prefork children get a fresh one,
since threads and sockets do not survive ``fork``.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from progress.errors import PartlyStored
from progress.events import EventEnvelope, WorkflowProgress, parse_event
from progress.keys import KeyLayout
from progress.redis_store import RedisEventStore, connect
from progress.reporter import Reporter
from progress.settings import ProgressSettings
from progress.store import EventWriter, StoredEvent
from progress.workflow import WorkflowCancelRequested, WorkflowCounter, WorkflowWriter

_lock = threading.RLock()
_settings: ProgressSettings | None = None
_writer_factory: Callable[[], EventWriter] | None = None
_reporter: Reporter | None = None
_store: EventWriter | None = None
#: Events stored by :func:`publish` in this process, by type (read by the workers' metrics).
published_by_type: Counter[str] = Counter()


def configure(
    settings: ProgressSettings | None = None,
    writer_factory: Callable[[], EventWriter] | None = None,
) -> None:
    """Set the settings (and optionally the store) this process reports with.

    Closes the current reporter first, so call it at start-up or between tests.
    """
    global _settings, _writer_factory
    shutdown()
    with _lock:
        _settings = settings
        _writer_factory = writer_factory


def get_settings() -> ProgressSettings:
    """The settings in force (read from the environment on first use)."""
    global _settings
    with _lock:
        if _settings is None:
            _settings = ProgressSettings()
        return _settings


def _make_writer(held: bool = True) -> EventWriter:
    """The store, wrapped to count workflows. ``held`` False (the synchronous writer of
    :func:`publish` and the watchdog, which no sender thread ticks): a workflow value is sent
    at once, never held for a trailing edge nobody would send."""
    settings = get_settings()
    if _writer_factory is not None:
        inner = _writer_factory()
    else:
        inner = RedisEventStore(connect(settings.redis_url), settings.store_settings())
    if not settings.workflow_progress:
        return WorkflowWriter(inner, None)
    counter = WorkflowCounter(
        lambda: connect(settings.redis_url),
        KeyLayout(settings.key_prefix),
        settings.retention_seconds,
        settings.workflow_throttle_seconds if held else 0.0,
    )
    return WorkflowWriter(inner, counter)


def get_reporter() -> Reporter:
    """This process's reporter, created on first use."""
    global _reporter
    reporter = _reporter
    if reporter is not None:
        return reporter
    settings = get_settings()
    with _lock:
        if _reporter is None:
            _reporter = Reporter(settings, _make_writer)
        return _reporter


def current_reporter() -> Reporter | None:
    """This process's reporter if one was created (never creates one)."""
    return _reporter


def get_store() -> EventWriter:
    """This process's writer for synchronous publishing."""
    global _store
    get_settings()
    with _lock:
        if _store is None:
            _store = _make_writer(held=False)
        return _store


def store_now(batch: Sequence[tuple[EventEnvelope, Sequence[str]]]) -> list[StoredEvent]:
    """Store ``batch`` now through the synchronous writer. What must follow stored events but
    failed (their workflow counting, Redis gone in between) goes to the sender thread, which
    retries it; the events are not stored again."""
    try:
        return get_store().append_many(batch)
    except PartlyStored as exc:
        reporter = get_reporter()
        for pending, recipients in exc.pending:
            reporter.submit(pending, recipients)
        return exc.stored


def publish(
    event: EventEnvelope | dict[str, Any], recipients: Sequence[str] = ()
) -> list[StoredEvent]:
    """Validate, store and fan out ``event`` now; return where it was stored.

    ``event`` is an event model or a dict with a ``type``; ``recipients`` are further users
    whose streams receive it (a novel's members, for a content event).
    """
    parsed = parse_event(event)
    stored = store_now([(parsed, recipients)])
    published_by_type[parsed.type] += 1
    return stored


def cancel_workflow(user_id: str, workflow_id: str) -> None:
    """Mark the whole workflow cancelled now: it ends ``cancelled`` and a final
    ``workflow.progress`` says so. Stopping its tasks is the caller's part (revoke them, or
    let them check a cancel flag)."""
    get_store().append(WorkflowCancelRequested(user_id=user_id, workflow_id=workflow_id))


def workflow_snapshot(user_id: str, workflow_id: str) -> WorkflowProgress | None:
    """The workflow's current counts as a ``workflow.progress`` event (not stored), or None
    when nothing of it is known (or counting is off)."""
    store = get_store()
    counter = store.counter if isinstance(store, WorkflowWriter) else None
    tally = counter.snapshot(user_id, workflow_id) if counter is not None else None
    if tally is None or tally.total == 0:
        return None
    return tally.event(user_id, workflow_id, None)


def shutdown(timeout: float = 5.0) -> None:
    """Send what is queued (up to ``timeout``) and forget the reporter and store."""
    global _reporter, _store
    with _lock:
        reporter, store, _reporter, _store = _reporter, _store, None, None
    if reporter is not None:
        reporter.pump.close(timeout)
    if store is not None:
        store.close()


def _forget_after_fork() -> None:
    global _reporter, _store, _lock
    _lock = threading.RLock()
    _reporter = None
    _store = None
    published_by_type.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
atexit.register(shutdown)
