"""Fixtures shared by every test: real servers on free loopback ports, stopped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from progress.redis_server import RedisServer
from tests.postgres_server import PostgresServer
from tests.redis_cluster import RedisCluster
from workers.migrate import upgrade


@pytest.fixture(scope="session", autouse=True)
def development_audit_key() -> Iterator[None]:
    """Tests run as a development machine: their workers, APIs and CLIs (in this process or
    children inheriting its environment) seal audit rows with the public development key
    unless a test sets AUDIT_ENCRYPTION_KEYS (or AUDIT_ALLOW_DEV_KEY=false to see the refusal)."""
    previous = os.environ.get("AUDIT_ALLOW_DEV_KEY")
    os.environ["AUDIT_ALLOW_DEV_KEY"] = "true"
    yield
    if previous is None:
        del os.environ["AUDIT_ALLOW_DEV_KEY"]
    else:
        os.environ["AUDIT_ALLOW_DEV_KEY"] = previous


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the test session."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of database 0 of the session's Redis (tests isolate by unique user ids)."""
    return f"{redis_server.url}/0"


@pytest.fixture
def user_id() -> str:
    """A user id no other test uses."""
    return f"user-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL cluster for the test session, started on first use."""
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """SQLAlchemy URL of the session PostgreSQL's (shared, unmigrated) test database."""
    return postgres_server.url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a fresh, migrated domain database: a new SQLite file, or a new database on the
    session's PostgreSQL (dropped afterwards). PostgreSQL starts only if a test asks for it."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'domain.db'}"
        upgrade(url)
        yield url
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"test_{uuid.uuid4().hex[:16]}"
    url = server.create_database(name)
    try:
        upgrade(url)
        yield url
    finally:
        server.drop_database(name)


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[RedisCluster]:
    """A real Redis Cluster (3 masters, 3 replicas) per test module: a failover or reshard in
    one module leaves the next a fresh cluster."""
    with RedisCluster() as cluster:
        yield cluster
