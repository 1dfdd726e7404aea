"""Bring a database to the newest schema: ``python -m workers.migrate [DATABASE_URL]``: the
application's tables (``workers/migrations``), then the progress journal's (its own migrations,
``python -m progress.migrate upgrade``).

:func:`ensure_schema` is the start-up check of the API and the workers, for both: the embedded
SQLite default migrates itself; any other database must have been migrated by this command first.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.exc import OperationalError

from progress import migrate as journal
from progress.migrate import SchemaOutdated
from workers.settings import DEFAULT_DATABASE_URL, WorkerSettings

_ROOT = Path(__file__).resolve().parent
log = logging.getLogger("workers.migrate")


__all__ = ["SchemaOutdated", "alembic_config", "ensure_schema", "revisions", "upgrade"]


def alembic_config(url: str) -> Config:
    """The Alembic configuration of the migrations in ``workers/migrations`` for ``url``."""
    return journal.alembic_config(url, _ROOT / "migrations")


def upgrade(url: str, revision: str = "head") -> None:
    """Run every application migration not yet applied to ``url``, up to ``revision``, then
    the journal's."""
    command.upgrade(alembic_config(url), revision)
    journal.upgrade(url)


def revisions(url: str) -> tuple[str | None, str | None]:
    """(the application revision ``url`` is at, None for an empty database; the newest one)."""
    return journal.revisions(url, _ROOT / "migrations", "alembic_version")


def ensure_schema(url: str) -> None:
    """Check that ``url`` is at the newest revision (the application's and the journal's);
    migrate the embedded SQLite default.

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
        journal.ensure_schema(url, migrate=url == DEFAULT_DATABASE_URL)
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
