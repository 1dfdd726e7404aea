"""Settings of the progress library, read from the environment (``REDIS_URL``, ``PROGRESS_*``)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from progress.store import StoreSettings


class ProgressSettings(StoreSettings):
    """How workers report progress. Build one in code for tests; nothing reads env at import.

    The store's settings (``key_prefix``, ``retention_seconds``, ``max_stream_length``,
    ``streams_per_call``) come from ``StoreSettings``, shared with the API."""

    model_config = SettingsConfigDict(env_prefix="PROGRESS_", extra="ignore", populate_by_name=True)

    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "PROGRESS_REDIS_URL"),
    )
    throttle_seconds: float = Field(default=1.0, ge=0)
    heartbeat_seconds: float = Field(default=60.0, gt=0)
    #: Celery task names that report started/completed/failed without the decorator.
    tracked_tasks: frozenset[str] = frozenset()
    #: How long the sender keeps retrying a batch while Redis is unreachable.
    send_retry_seconds: float = Field(default=5.0, ge=0)
    #: Events waiting to be sent beyond this are dropped (and logged).
    max_queued_events: int = Field(default=10_000, ge=1)
    #: How long a finishing task waits for its events to be stored.
    flush_timeout_seconds: float = Field(default=5.0, ge=0)
    #: Count the tasks of workflows (``acting_as(..., workflow_id=...)``) in Redis and send
    #: ``workflow.progress`` events (progress.workflow).
    workflow_progress: bool = True
    #: At most one ``workflow.progress`` per workflow per this many seconds (trailing edge).
    workflow_throttle_seconds: float = Field(default=1.0, ge=0)


class JournalSettings(BaseSettings):
    """The SQL journal of important events and the periodic jobs ``progress.install`` adds.

    No database URL (``PROGRESS_DATABASE_URL``, else ``DATABASE_URL``): no journal; events are
    pushed to Redis only. Build one in code for tests; nothing reads env at import."""

    model_config = SettingsConfigDict(env_prefix="PROGRESS_", extra="ignore", populate_by_name=True)

    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("PROGRESS_DATABASE_URL", "DATABASE_URL")
    )
    #: Fernet keys sealing the sensitive fields of journaled events, newest first,
    #: comma-separated. Unset: a worker with a journal refuses to start, unless
    #: ``audit_allow_dev_key``.
    audit_encryption_keys: str = Field(
        default="",
        validation_alias=AliasChoices("PROGRESS_AUDIT_ENCRYPTION_KEYS", "AUDIT_ENCRYPTION_KEYS"),
    )
    #: Development only: seal with the public key (``progress.sealing.DEV_AUDIT_KEY``).
    audit_allow_dev_key: bool = Field(
        default=False,
        validation_alias=AliasChoices("PROGRESS_AUDIT_ALLOW_DEV_KEY", "AUDIT_ALLOW_DEV_KEY"),
    )
    #: A worker migrates the journal's tables itself at start (else it refuses to start on
    #: an unmigrated database: run ``python -m progress.migrate upgrade``).
    auto_migrate: bool = False
    #: Journal rows older than this are deleted by the retention job.
    audit_retention_days: float = Field(
        default=7,
        gt=0,
        validation_alias=AliasChoices("PROGRESS_AUDIT_RETENTION_DAYS", "AUDIT_RETENTION_DAYS"),
    )
    audit_retention_every_seconds: float = Field(default=3600, gt=0)
    audit_delete_batch: int = Field(default=1000, ge=1)
    #: Seconds between runs of the dispatcher pushing rows still pending or failed.
    outbox_dispatch_seconds: float = Field(default=30, gt=0)
    #: A pending row younger than this is left to the process that is pushing it.
    outbox_grace_seconds: float = Field(default=10, ge=0)
    #: Failed pushes are retried by the dispatcher until this many attempts.
    outbox_max_attempts: int = Field(default=20, ge=1)
    #: Group commit of journal rows: concurrent writers share a transaction.
    outbox_group_commit: bool = True
    #: Longest an event waits for others to share its commit.
    outbox_batch_wait_ms: float = Field(default=2.0, ge=0)
    outbox_batch_max: int = Field(default=500, ge=1)
    #: Tests only: SIGKILL the process right after a journal commit, before the push.
    outbox_crash_after_commit: bool = False
    #: Seconds between runs of the watchdog reporting tasks whose heartbeats stopped.
    watchdog_seconds: float = Field(default=60, gt=0)
