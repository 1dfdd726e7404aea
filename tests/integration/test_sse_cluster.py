"""Issue 3: several API instances, and a Redis restart under open streams."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from progress.events import TaskUpdated
from progress.redis_server import RedisServer
from progress.redis_store import RedisEventStore, connect
from tests.integration.test_sse_stream import open_stream, updates
from tests.servers import ApiServer
from tests.sse_client import SseClient

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def two_apis(redis_server: RedisServer) -> Iterator[tuple[ApiServer, ApiServer]]:
    with (
        ApiServer(f"{redis_server.url}/0") as first,
        ApiServer(f"{redis_server.url}/0") as second,
    ):
        yield first, second


def test_one_event_reaches_the_users_streams_on_both_instances(
    two_apis: tuple[ApiServer, ApiServer], redis_url: str, user_id: str
) -> None:
    first, second = two_apis
    jwt = first.jwt(user_id)
    on_first, on_second = open_stream(first, jwt), open_stream(second, jwt)
    try:
        RedisEventStore(connect(redis_url)).append(
            TaskUpdated(user_id=user_id, task_id="t", percent=33)
        )
        on_first.wait_for(lambda events: updates(events) == [33])
        on_second.wait_for(lambda events: updates(events) == [33])
    finally:
        on_first.close()
        on_second.close()


def test_per_user_limit_holds_across_instances(
    two_apis: tuple[ApiServer, ApiServer], user_id: str
) -> None:
    first, second = two_apis
    jwt = first.jwt(user_id)
    streams = [open_stream(first, jwt), open_stream(second, jwt)]
    try:
        third = SseClient(f"{first.url}/api/v1/events/stream?sse_token={first.sse_token(jwt)}")
        fourth = SseClient(f"{second.url}/api/v1/events/stream?sse_token={second.sse_token(jwt)}")
        assert (third.wait_open(), fourth.wait_open()) == (429, 429)
        third.close()
        fourth.close()
    finally:
        for stream in streams:
            stream.close()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def test_redis_restart_loses_nothing_stored_after_it_returns(
    own_redis: RedisServer, user_id: str
) -> None:
    url = f"{own_redis.url}/0"
    with ApiServer(url, SSE_HEARTBEAT_SECONDS="1") as api:
        jwt = api.jwt(user_id)
        live = open_stream(api, jwt)
        store = RedisEventStore(connect(url))
        try:
            store.append(TaskUpdated(user_id=user_id, task_id="t", percent=1))
            live.wait_for(lambda events: updates(events) == [1])
            cursor_before = live.last_id

            own_redis.restart()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    store.append(TaskUpdated(user_id=user_id, task_id="t", percent=2))
                    break
                except Exception:
                    time.sleep(0.1)
            for percent in range(3, 11):
                store.append(TaskUpdated(user_id=user_id, task_id="t", percent=percent))

            try:
                events = live.wait_for(lambda events: 10 in updates(events), timeout=15)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\nAPI log:\n{api.log_text}") from None
            after = [p for p in updates(events) if p >= 2]
            assert after == list(range(2, 11)), "every event stored after the restart, once"
            assert any(e.event == "stream.reset" for e in events), "the lost history is said"
        finally:
            live.close()

        resumed = open_stream(api, jwt, cursor_before)
        try:
            events = resumed.wait_for(lambda events: 10 in updates(events), timeout=10)
            assert updates(events) == list(range(2, 11))
            assert any(e.event == "stream.reset" for e in events)
        finally:
            resumed.close()
