"""Worker hooks of the database and the outbox: at start, refuse to run without a private audit
key and check the schema (the embedded SQLite default migrates itself; a worker refuses to run
on an unmigrated database); journal important events in this worker; as soon as the worker is
ready, write what the journal spill holds (events pushed while the database was down) and push
what a previous (crashed) process left pending."""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import signals

import progress
from progress.outbox import dispatch_pending, drain_spill
from progress.sealing import DEV_KEY_WARNING, MissingAuditKeys, sealing_keys, seals_with_dev_key
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


def _check_audit_keys(**_: Any) -> None:
    # Checked at start, not at the first important event: a worker that cannot seal must not
    # take tasks. SystemExit, since Celery logs and swallows an Exception from a receiver.
    current = resources.settings()
    try:
        keys = sealing_keys(current.audit_encryption_keys, current.audit_allow_dev_key)
    except MissingAuditKeys as exc:
        log.critical("worker refuses to start: %s", exc)
        raise SystemExit(f"worker refuses to start: {exc}") from None
    if seals_with_dev_key(keys):
        log.warning(DEV_KEY_WARNING)


def _use_outbox(**_: Any) -> None:
    progress.configure(writer_factory=resources.outbox_writer)


def _dispatch_left_over() -> None:
    try:
        drain_spill(resources.journal_spill(), resources.audit_log())
        pushed = dispatch_pending(
            resources.audit_log(),
            resources.progress_store(),
            grace_seconds=0,
            max_attempts=resources.settings().outbox_max_attempts,
        )
        log.info("outbox: pushed %d events left pending by an earlier process", pushed)
    except Exception:
        log.exception("outbox: start-up dispatch failed; the beat dispatcher will retry")


def _dispatch_on_ready(**_: Any) -> None:
    # Grace 0: a row another live worker is pushing right now is refused by the store's dedupe.
    threading.Thread(target=_dispatch_left_over, name="outbox-startup", daemon=True).start()


def connect_outbox_signals() -> None:
    """Connect the hooks (idempotent)."""
    signals.worker_init.connect(_check_audit_keys, weak=False, dispatch_uid="outbox.keys")
    signals.worker_init.connect(_check_schema, weak=False, dispatch_uid="outbox.schema")
    signals.worker_init.connect(_use_outbox, weak=False, dispatch_uid="outbox.use")
    signals.worker_ready.connect(_dispatch_on_ready, weak=False, dispatch_uid="outbox.ready")
