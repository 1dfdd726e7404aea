"""Settings of the Celery workers, read from the environment."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class WorkerSettings(BaseSettings):
    """Broker, result backend and the local text generator's pace."""

    model_config = SettingsConfigDict(env_prefix="WORKER_", extra="ignore", populate_by_name=True)

    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", validation_alias=AliasChoices("REDIS_URL")
    )
    broker_db: int = 1
    result_db: int = 2
    soft_time_limit_seconds: float = 600
    #: Pace of the built-in local generator, so progress is visible in the demo.
    local_tokens_per_second: float = Field(default=200, gt=0)

    def redis_db_url(self, db: int) -> str:
        """``redis_url`` with its database number replaced by ``db``."""
        base = self.redis_url.split("?")[0].rstrip("/")
        head, _, tail = base.rpartition("/")
        if head.startswith("redis") and tail.isdigit():
            base = head
        return f"{base}/{db}"
