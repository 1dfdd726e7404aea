"""Settings of the Celery workers (and the domain they share with the API), from the environment."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The embedded SQLite database used when ``DATABASE_URL`` is unset (it migrates itself).
DEFAULT_DATABASE_URL = "sqlite:///infinitescribe.db"


class WorkerSettings(BaseSettings):
    """Broker, result backend, database, and the text generator."""

    model_config = SettingsConfigDict(env_prefix="WORKER_", extra="ignore", populate_by_name=True)

    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", validation_alias=AliasChoices("REDIS_URL")
    )
    database_url: str = Field(
        default=DEFAULT_DATABASE_URL, validation_alias=AliasChoices("DATABASE_URL")
    )
    broker_db: int = 1
    result_db: int = 2
    #: Seconds before an unacknowledged task of a lost worker is delivered again.
    visibility_timeout_seconds: int = 3600
    soft_time_limit_seconds: float = 600
    #: Seconds between watchdog runs (Celery beat) looking for tasks whose heartbeats stopped.
    watchdog_seconds: float = Field(default=60, gt=0)
    #: An in-progress novel none of whose steps runs and that did not change for this long is
    #: resumed (drafting, reviewing) or failed (queued, outlining) by the watchdog: its workflow
    #: stopped (a message lost with Redis). Longer than a step may wait in the queue.
    novel_resume_after_seconds: float = Field(default=900, gt=0)
    #: ``local`` (built-in deterministic generator) or ``openai`` (LLM_BASE_URL etc.).
    llm: str = Field(default="local", validation_alias=AliasChoices("LLM_PROVIDER", "WORKER_LLM"))
    llm_base_url: str = Field(default="", validation_alias=AliasChoices("LLM_BASE_URL"))
    llm_api_key: str = Field(default="", validation_alias=AliasChoices("LLM_API_KEY"))
    llm_model: str = Field(default="gpt-4o-mini", validation_alias=AliasChoices("LLM_MODEL"))
    #: Pace of the built-in local generator, so progress is visible in the demo.
    local_tokens_per_second: float = Field(default=200, gt=0)
    tokens_per_chapter: int = Field(default=120, ge=10)
    #: Prometheus exporter of each worker process: the main process on this port, prefork
    #: child n on port + n (n from 1). 0 turns the exporters off.
    metrics_port: int = Field(default=0, ge=0, le=65535)
    #: Address the exporters listen on.
    metrics_host: str = "0.0.0.0"

    #: Fernet keys sealing the sensitive fields of audited events, newest first, comma-separated.
    #: Unset: the worker refuses to start, unless ``audit_allow_dev_key``.
    audit_encryption_keys: str = Field(
        default="", validation_alias=AliasChoices("AUDIT_ENCRYPTION_KEYS")
    )
    #: Development only: seal with the public key (progress.sealing.DEV_AUDIT_KEY) when
    #: AUDIT_ENCRYPTION_KEYS is unset (a warning is logged at start).
    audit_allow_dev_key: bool = Field(
        default=False, validation_alias=AliasChoices("AUDIT_ALLOW_DEV_KEY")
    )
    #: Audit rows older than this are deleted by the ``audit_retention`` beat task.
    audit_retention_days: float = Field(
        default=7, gt=0, validation_alias=AliasChoices("AUDIT_RETENTION_DAYS")
    )
    audit_retention_every_seconds: float = Field(default=3600, gt=0)
    audit_delete_batch: int = Field(default=1000, ge=1)
    #: Seconds between dispatcher runs (beat) pushing outbox rows still pending or failed.
    outbox_dispatch_seconds: float = Field(default=30, gt=0)
    #: A pending row younger than this is left to the process that is pushing it.
    outbox_grace_seconds: float = Field(default=10, ge=0)
    #: Failed pushes are retried by the dispatcher until this many attempts (one per dispatcher
    #: run; a sender's retries of one batch count once), then wait for an operator.
    outbox_max_attempts: int = Field(default=20, ge=1)
    #: Group commit of outbox rows: concurrent writers share a transaction.
    outbox_group_commit: bool = True
    #: Longest an event waits for others to share its commit.
    outbox_batch_wait_ms: float = Field(default=2.0, ge=0)
    outbox_batch_max: int = Field(default=500, ge=1)
    #: Tests only: SIGKILL the process right after an outbox commit, before the push.
    outbox_crash_after_commit: bool = False

    def redis_db_url(self, db: int) -> str:
        """``redis_url`` with its database number replaced by ``db``."""
        base = self.redis_url.split("?")[0].rstrip("/")
        head, _, tail = base.rpartition("/")
        if head.startswith("redis") and tail.isdigit():
            base = head
        return f"{base}/{db}"
