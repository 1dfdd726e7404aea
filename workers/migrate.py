"""Bring a database to the newest schema: ``python -m workers.migrate [DATABASE_URL]``."""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config

from workers.settings import WorkerSettings

_ROOT = Path(__file__).resolve().parent


def alembic_config(url: str) -> Config:
    """The Alembic configuration of the migrations in ``workers/migrations`` for ``url``."""
    config = Config()
    config.set_main_option("script_location", str(_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Run every migration not yet applied to ``url``, up to ``revision``."""
    command.upgrade(alembic_config(url), revision)


if __name__ == "__main__":
    upgrade(sys.argv[1] if len(sys.argv) > 1 else WorkerSettings().database_url)
