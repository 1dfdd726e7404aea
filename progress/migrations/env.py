"""Alembic environment of the journal's tables (version table ``progress_alembic_version``)."""

from __future__ import annotations

from alembic import context

from progress.journal_tables import JournalBase
from progress.settings import JournalSettings
from progress.sql import make_engine

VERSION_TABLE = "progress_alembic_version"

config = context.config
url = config.get_main_option("sqlalchemy.url") or JournalSettings().database_url
if not url:
    raise SystemExit("no database: set PROGRESS_DATABASE_URL or DATABASE_URL")

if context.is_offline_mode():
    context.configure(
        url=url,
        target_metadata=JournalBase.metadata,
        literal_binds=True,
        version_table=VERSION_TABLE,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=JournalBase.metadata,
                version_table=VERSION_TABLE,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()
