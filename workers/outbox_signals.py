"""Worker hook of the application's database: at start, check the schema (the application's
migrations and the progress journal's; the embedded SQLite default migrates itself; a worker
refuses to run on an unmigrated database). Connected before ``progress.install``'s own checks
(sealing keys, the journal's schema), which then find the embedded default migrated.

The journal itself (important events recorded before they are pushed, the dispatch of what a
crashed process left pending, the beat entries) is ``progress.install(app)``'s.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import signals

from workers import resources
from workers.migrate import SchemaOutdated, ensure_schema

log = logging.getLogger("workers.outbox")


def _check_schema(**_: Any) -> None:
    try:
        ensure_schema(resources.settings().database_url)
    except SchemaOutdated as exc:
        log.critical("%s", exc)
        # SystemExit, not an Exception: Celery logs and swallows those raised by receivers.
        raise SystemExit(f"worker not started: {exc}") from None


def connect_outbox_signals() -> None:
    """Connect the hook (idempotent)."""
    signals.worker_init.connect(_check_schema, weak=False, dispatch_uid="outbox.schema")
