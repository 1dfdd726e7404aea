"""Settings of the progress library, read from the environment (``REDIS_URL``, ``PROGRESS_*``)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

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
