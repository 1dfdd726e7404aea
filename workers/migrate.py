"""Bring a database to the newest schema: ``python -m workers.migrate [DATABASE_URL]``.

:func:`ensure_schema` is the start-up check of the API and the workers: the embedded SQLite
default migrates itself; any other database must have been migrated by this command first.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import OperationalError

from progress.sql import make_engine
from workers.settings import DEFAULT_DATABASE_URL, WorkerSettings

_ROOT = Path(__file__).resolve().parent
log = logging.getLogger("workers.migrate")


class SchemaOutdated(RuntimeError):
    """The database's schema is not the one this code expects."""


def alembic_config(url: str) -> Config:
    """The Alembic configuration of the migrations in ``workers/migrations`` for ``url``."""
    config = Config()
    config.set_main_option("script_location", str(_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Run every migration not yet applied to ``url``, up to ``revision``."""
    command.upgrade(alembic_config(url), revision)


def revisions(url: str) -> tuple[str | None, str | None]:
    """(the revision ``url`` is at, None for an empty database; the newest revision)."""
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision(), head
    finally:
        engine.dispose()


def ensure_schema(url: str) -> None:
    """Check that ``url`` is at the newest revision; migrate the embedded SQLite default.

    Raises SchemaOutdated saying what to run for any other database behind (or ahead). A
    database that does not answer is logged and let be: a start during an outage must not
    fail for it (the requests that need it answer 503 until it is back).
    """
    try:
        current, head = revisions(url)
    except OperationalError as exc:
        log.warning("schema not checked: the database does not answer (%s)", type(exc).__name__)
        return
    if current == head:
        return
    if url == DEFAULT_DATABASE_URL:
        log.warning("migrating the embedded SQLite database from %s to %s", current, head)
        upgrade(url)
        return
    raise SchemaOutdated(
        f"database schema is at {current or 'no revision (empty database)'}, expected {head}: "
        "run python -m workers.migrate"
    )


if __name__ == "__main__":
    upgrade(sys.argv[1] if len(sys.argv) > 1 else WorkerSettings().database_url)
