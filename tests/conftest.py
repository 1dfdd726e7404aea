"""Fixtures shared by every test: real servers on free loopback ports, stopped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from progress.redis_server import RedisServer


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
