"""Settings of the Celery workers (and the domain they share with the API), from the environment."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from progress.settings import JournalSettings

#: The embedded SQLite database used when ``DATABASE_URL`` is unset (it migrates itself).
DEFAULT_DATABASE_URL = "sqlite:///infinitescribe.db"


class WorkerSettings(BaseSettings):
    """Broker, result backend, database, and the text generator."""

    model_config = SettingsConfigDict(env_prefix="WORKER_", extra="ignore", populate_by_name=True)

    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", validation_alias=AliasChoices("REDIS_URL")
    )
    #: The plain Redis of the Celery broker and result backend, when ``REDIS_URL`` is a
    #: Redis Cluster (``redis+cluster://``: Celery does not support Cluster). Unset: the
    #: broker and backend use ``REDIS_URL``'s server.
    celery_redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("CELERY_REDIS_URL")
    )
    database_url: str = Field(
        default=DEFAULT_DATABASE_URL, validation_alias=AliasChoices("DATABASE_URL")
    )
    broker_db: int = 1
    result_db: int = 2
    #: Seconds before an unacknowledged task of a lost worker is delivered again.
    visibility_timeout_seconds: int = 3600
    soft_time_limit_seconds: float = 600
    #: Seconds between runs of the novel watchdog (Celery beat): novels one of whose steps
    #: failed, or whose workflow stopped (the task watchdog is the progress library's:
    #: ``PROGRESS_WATCHDOG_SECONDS``).
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
    #: A batch revision (``revise_chapters``) announces its revised chapters at most once per
    #: this many seconds, each announcement naming every chapter revised since the last (R4.6).
    batch_merge_window_seconds: float = Field(default=2.0, ge=0)
    #: A dependency the tasks need (the LLM provider, the database) counts as down once this
    #: many distinct tasks failed on it within ``outage_window_seconds``: the writers affected
    #: get one ``system.error`` each, and one ``system.notification`` when it works again:
    #: after a success once no task failed on it for ``outage_recovery_seconds``.
    outage_failure_threshold: int = Field(default=5, ge=1)
    outage_window_seconds: float = Field(default=60, gt=0)
    outage_recovery_seconds: float = Field(default=60, ge=0)
    #: Prometheus exporter of each worker process: the main process on this port, prefork
    #: child n on port + n (n from 1). 0 turns the exporters off.
    metrics_port: int = Field(default=0, ge=0, le=65535)
    #: Address the exporters listen on.
    metrics_host: str = "0.0.0.0"

    def journal_settings(self) -> JournalSettings:
        """The progress journal's settings: this app's database, the rest from the environment
        (``PROGRESS_*``, ``AUDIT_ENCRYPTION_KEYS``, ``AUDIT_ALLOW_DEV_KEY``, ...)."""
        return JournalSettings(database_url=self.database_url)

    def redis_db_url(self, db: int) -> str:
        """The Celery Redis (``celery_redis_url``, else ``redis_url``) with its database
        number replaced by ``db``; ValueError when that would be a cluster."""
        url = self.celery_redis_url or self.redis_url
        if url.startswith("redis+cluster://"):
            raise ValueError(
                "REDIS_URL is a Redis Cluster: set CELERY_REDIS_URL to a plain Redis for the "
                "Celery broker and result backend (Celery does not support Cluster)"
            )
        base = url.split("?")[0].rstrip("/")
        head, _, tail = base.rpartition("/")
        if head.startswith("redis") and tail.isdigit():
            base = head
        return f"{base}/{db}"
