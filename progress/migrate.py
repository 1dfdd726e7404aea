"""The journal's tables, migrated by their own Alembic scripts (``progress/migrations``,
version table ``progress_alembic_version``), apart from any application's::

    python -m progress.migrate upgrade [URL]  # default: PROGRESS_DATABASE_URL, else DATABASE_URL
    python -m progress.migrate current [URL]  # the revision the database is at

:func:`ensure_schema` is the start-up check a worker with a journal runs (``progress.install``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import OperationalError

from progress.settings import JournalSettings
from progress.sql import make_engine

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "progress_alembic_version"
log = logging.getLogger("progress.migrate")


class SchemaOutdated(RuntimeError):
    """The database's schema is not the one this code expects."""


def alembic_config(url: str, scripts: Path = _MIGRATIONS) -> Config:
    """The Alembic configuration of the migrations in ``scripts`` (the journal's) for ``url``."""
    config = Config()
    config.set_main_option("script_location", str(scripts))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Run every journal migration not yet applied to ``url``, up to ``revision``."""
    command.upgrade(alembic_config(url), revision)


def revisions(
    url: str, scripts: Path = _MIGRATIONS, version_table: str = VERSION_TABLE
) -> tuple[str | None, str | None]:
    """(the revision ``url`` is at, None for none; the newest revision of ``scripts``)."""
    head = ScriptDirectory.from_config(alembic_config(url, scripts)).get_current_head()
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"version_table": version_table})
            return context.get_current_revision(), head
    finally:
        engine.dispose()


def ensure_schema(url: str, migrate: bool = False) -> None:
    """Check that the journal's tables in ``url`` are at the newest revision; with ``migrate``,
    bring them there instead of failing.

    Raises SchemaOutdated saying what to run. A database that does not answer is logged and
    let be: a start during an outage must not fail for it (the journal spills meanwhile).
    """
    try:
        current, head = revisions(url)
    except OperationalError as exc:
        log.warning("journal schema not checked: the database does not answer (%s)", exc)
        return
    if current == head:
        return
    if migrate:
        log.warning("migrating the journal's tables from %s to %s", current, head)
        upgrade(url)
        return
    raise SchemaOutdated(
        f"journal schema is at {current or 'no revision'}, expected {head}: "
        "run python -m progress.migrate upgrade"
    )


def main(argv: list[str]) -> None:
    """``upgrade`` or ``current``, on the URL given or the settings' one."""
    parser = argparse.ArgumentParser(prog="python -m progress.migrate")
    parser.add_argument("command", choices=["upgrade", "current"])
    parser.add_argument("url", nargs="?")
    args = parser.parse_args(argv)
    url = args.url or JournalSettings().database_url
    if not url:
        parser.error("no database: pass a URL or set PROGRESS_DATABASE_URL or DATABASE_URL")
    if args.command == "upgrade":
        upgrade(url)
        return
    current, head = revisions(url)
    sys.stdout.write(f"{current or 'none'} (head {head})\n")


if __name__ == "__main__":
    main(sys.argv[1:])
