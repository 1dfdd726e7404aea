"""Alembic environment: the URL comes from DATABASE_URL (or the Alembic config)."""

from __future__ import annotations

from alembic import context

from progress.sql import make_engine
from workers.db import Base
from workers.settings import WorkerSettings

config = context.config
url = config.get_main_option("sqlalchemy.url") or WorkerSettings().database_url

if context.is_offline_mode():
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, target_metadata=Base.metadata)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()
