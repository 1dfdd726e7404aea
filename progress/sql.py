"""SQL plumbing of the journal (and of any app that shares its database): engines, sessions,
naive UTC times, 64-bit keys."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, Integer, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

#: Autoincrementing 64-bit keys; SQLite only autoincrements an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer, "sqlite")


def utcnow_naive() -> datetime:
    """Now in UTC without tzinfo: how the audit tables store time on every backend."""
    return datetime.now(UTC).replace(tzinfo=None)


#: Seconds to wait for a PostgreSQL connection before the call fails.
CONNECT_TIMEOUT_SECONDS = 3


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys and a busy timeout for concurrent writers."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    # A database that does not answer must fail a request in seconds (503), not hang it.
    postgres = url.startswith("postgres")
    connect_args = {"connect_timeout": CONNECT_TIMEOUT_SECONDS} if postgres else {}
    return create_engine(url, pool_pre_ping=True, pool_timeout=10, connect_args=connect_args)


def make_sessions(engine: Engine) -> sessionmaker[Session]:
    """A session factory whose objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)
