"""One call gives a Celery app the whole guarantee: :func:`install`.

    app = Celery("myapp", broker=...)
    progress.install(app)

What it connects (once per process; calling it again replaces the journal settings)::

    always          the progress signals (started / updated / completed / failed / ...)
                    beat entry  progress-watchdog        -> task progress.watchdog
    with a database (JournalSettings.database_url: PROGRESS_DATABASE_URL, else DATABASE_URL)
      worker_init   refuse to start without a sealing key or on an unmigrated database
                    (SystemExit: Celery logs and swallows an Exception from a receiver);
                    important events of this worker are journaled before they are pushed
      worker_ready  (a thread) write the journal spill, push rows a crashed process left pending
                    beat entry  progress-outbox-dispatch  -> task progress.outbox_dispatch
                    beat entry  progress-journal-retention -> task progress.journal_retention

The beat entries need one beat process (``celery -A myapp beat``, or ``worker --beat``).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any

from celery import Celery, signals

from progress import runtime
from progress.redis_store import RedisEventStore, connect
from progress.settings import JournalSettings
from progress.signals import connect_signals, watch_app
from progress.watchdog import watch_running_tasks

if TYPE_CHECKING:  # the journal (SQLAlchemy, Alembic) is imported only when configured
    from progress.journaling import Journaling

log = logging.getLogger("progress.install")

_journaling: Journaling | None = None
_watch_store: RedisEventStore | None = None
_watchdog_running = threading.Lock()


def install(app: Celery, settings: JournalSettings | None = None) -> Journaling | None:
    """Connect progress reporting, the SQL journal (if a database is configured) and their
    periodic jobs to ``app``; the process's :class:`Journaling` (None without a database).

    ``settings`` default to :class:`JournalSettings` read from the environment now.
    """
    global _journaling
    current = settings or JournalSettings()
    connect_signals()
    watch_app(app)
    _journaling = None
    if current.database_url:
        from progress.journaling import Journaling

        _journaling = Journaling(current)
    schedule: dict[str, dict[str, Any]] = {
        "progress-watchdog": {"task": "progress.watchdog", "schedule": current.watchdog_seconds},
    }
    app.task(name="progress.watchdog", ignore_result=True)(watchdog)
    if _journaling is not None:
        app.task(name="progress.outbox_dispatch", ignore_result=True)(outbox_dispatch)
        app.task(name="progress.journal_retention", ignore_result=True)(journal_retention)
        schedule["progress-outbox-dispatch"] = {
            "task": "progress.outbox_dispatch",
            "schedule": current.outbox_dispatch_seconds,
        }
        schedule["progress-journal-retention"] = {
            "task": "progress.journal_retention",
            "schedule": current.audit_retention_every_seconds,
        }
        signals.worker_init.connect(_check, weak=False, dispatch_uid="progress.install.check")
        signals.worker_ready.connect(_on_ready, weak=False, dispatch_uid="progress.install.ready")
    app.conf.beat_schedule = {**(app.conf.beat_schedule or {}), **schedule}
    return _journaling


def _installed() -> Journaling:
    if _journaling is None:
        raise RuntimeError("progress.install(app) was not called with a database URL")
    return _journaling


def _check(**_: Any) -> None:
    from progress.migrate import SchemaOutdated
    from progress.sealing import MissingAuditKeys

    journaling = _journaling
    if journaling is None:
        return
    try:
        journaling.check()
    except (MissingAuditKeys, SchemaOutdated) as exc:
        log.critical("worker refuses to start: %s", exc)
        raise SystemExit(f"worker refuses to start: {exc}") from None
    runtime.configure(writer_factory=journaling.writer)


def _dispatch_left_over(journaling: Journaling) -> None:
    try:
        # Grace 0: a row another live worker is pushing right now is refused by the store.
        found = journaling.dispatch(grace_seconds=0)
        log.info("outbox: pushed %d events left pending by an earlier process", found["pushed"])
    except Exception:
        log.exception("outbox: start-up dispatch failed; the beat dispatcher will retry")


def _on_ready(**_: Any) -> None:
    journaling = _journaling
    if journaling is not None:
        thread = threading.Thread(
            target=_dispatch_left_over, args=(journaling,), name="outbox-startup", daemon=True
        )
        thread.start()


def watchdog() -> dict[str, int]:
    """Beat: tasks whose heartbeats stopped are reported ``stalled``, then ``failed``.

    Runs in one process never overlap: a slow run could otherwise publish ``stalled`` for a
    task after a later run had already declared it lost.
    """
    if not _watchdog_running.acquire(blocking=False):
        return {"stalled": 0, "lost": 0}
    try:
        return watch_running_tasks(_store(), runtime.get_settings().heartbeat_seconds)
    finally:
        _watchdog_running.release()


def _store() -> RedisEventStore:
    global _watch_store
    if _journaling is not None:
        return _journaling.store()
    if _watch_store is None:
        settings = runtime.get_settings()
        _watch_store = RedisEventStore(connect(settings.redis_url), settings.store_settings())
    return _watch_store


def outbox_dispatch() -> dict[str, int]:
    """Beat: write spilled journal records, then push rows still pending or failed."""
    return _installed().dispatch()


def journal_retention() -> dict[str, int]:
    """Beat: delete journal rows older than the retention."""
    return _installed().retain()


def _forget_after_fork() -> None:
    global _watch_store, _watchdog_running
    _watch_store = None
    _watchdog_running = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
