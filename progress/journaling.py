"""The SQL journal of one process, built from :class:`~progress.settings.JournalSettings`:
the audit log, the group-commit journal, the spill, the outbox writer, and the jobs that keep
them (start-up checks, dispatch of rows left pending, retention).

Everything is created on first use and forgotten after ``fork`` (Celery's prefork children),
since engines and sockets do not survive it.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from datetime import timedelta

from progress.audit_log import AuditLog
from progress.journal_spill import RedisJournalSpill
from progress.journal_sql import SqlJournal
from progress.migrate import ensure_schema
from progress.outbox import OutboxWriter, dispatch_pending, drain_spill
from progress.redis_store import RedisEventStore, connect
from progress.runtime import get_settings
from progress.sealing import DEV_KEY_WARNING, Sealer, sealing_keys, seals_with_dev_key
from progress.settings import JournalSettings
from progress.sql import make_engine, make_sessions, utcnow_naive

log = logging.getLogger("progress.outbox")

_all: weakref.WeakSet[Journaling] = weakref.WeakSet()


class Journaling:
    """The journal's objects for one database, per process (see the module docstring)."""

    def __init__(self, settings: JournalSettings) -> None:
        if not settings.database_url:
            raise ValueError("a journal needs a database URL (PROGRESS_DATABASE_URL)")
        self.settings = settings
        self.database_url: str = settings.database_url
        self._lock = threading.RLock()
        self._audit: AuditLog | None = None
        self._journal: SqlJournal | None = None
        self._store: RedisEventStore | None = None
        _all.add(self)

    def check(self) -> None:
        """Start-up checks: a key to seal with (MissingAuditKeys), the journal's tables at
        the newest revision (SchemaOutdated; migrated instead with ``auto_migrate``)."""
        keys = sealing_keys(self.settings.audit_encryption_keys, self.settings.audit_allow_dev_key)
        if seals_with_dev_key(keys):
            log.warning(DEV_KEY_WARNING)
        ensure_schema(self.database_url, migrate=self.settings.auto_migrate)

    def audit_log(self) -> AuditLog:
        """The audit log (the journal's table) on this process's engine."""
        with self._lock:
            if self._audit is None:
                current = self.settings
                keys = sealing_keys(current.audit_encryption_keys, current.audit_allow_dev_key)
                sessions = make_sessions(make_engine(self.database_url))
                self._audit = AuditLog(sessions, Sealer(keys))
            return self._audit

    def journal(self) -> SqlJournal:
        """The journal important events are recorded in (group commit per the settings)."""
        with self._lock:
            if self._journal is None:
                current = self.settings
                batching = (current.outbox_batch_wait_ms / 1000, current.outbox_batch_max)
                self._journal = SqlJournal(
                    self.audit_log(),
                    batching if current.outbox_group_commit else None,
                    current.outbox_crash_after_commit,
                )
            return self._journal

    def store(self) -> RedisEventStore:
        """The event store (``progress`` settings) the dispatcher pushes to."""
        with self._lock:
            if self._store is None:
                progress_settings = get_settings()
                self._store = RedisEventStore(
                    connect(progress_settings.redis_url), progress_settings.store_settings()
                )
            return self._store

    def spill(self) -> RedisJournalSpill:
        """The journal spill (on the event store's Redis)."""
        store = self.store()
        return RedisJournalSpill(store.client, store.settings)

    def writer(self) -> OutboxWriter:
        """A new event writer that journals important events before pushing them to Redis."""
        progress_settings = get_settings()
        client = connect(progress_settings.redis_url)
        store = RedisEventStore(client, progress_settings.store_settings())
        return OutboxWriter(store, self.journal(), RedisJournalSpill(client, store.settings))

    def dispatch(self, grace_seconds: float | None = None) -> dict[str, int]:
        """Write what the spill holds to the journal, then push the rows still pending after
        the grace time (default: the settings') and failed ones with attempts left."""
        grace = self.settings.outbox_grace_seconds if grace_seconds is None else grace_seconds
        drained = drain_spill(self.spill(), self.audit_log())
        pushed = dispatch_pending(
            self.audit_log(), self.store(), grace, self.settings.outbox_max_attempts
        )
        return {"drained": drained, "pushed": pushed}

    def retain(self) -> dict[str, int]:
        """Delete journal rows older than the retention, in short batches."""
        cutoff = utcnow_naive() - timedelta(days=self.settings.audit_retention_days)
        deleted = self.audit_log().delete_before(cutoff, self.settings.audit_delete_batch)
        return {"deleted": deleted}

    def close(self) -> None:
        """Commit what is queued, close the connections, then forget them."""
        with self._lock:
            journal, audit, store = self._journal, self._audit, self._store
            self.forget()
        if journal is not None:
            journal.close()
        if audit is not None:
            audit.dispose()
        if store is not None:
            store.close()

    def forget(self) -> None:
        """Drop every object without closing it (after fork: not this process's)."""
        self._lock = threading.RLock()
        self._audit, self._journal, self._store = None, None, None


def _forget_after_fork() -> None:
    for journaling in list(_all):
        journaling.forget()


os.register_at_fork(after_in_child=_forget_after_fork)
