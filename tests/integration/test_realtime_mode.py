"""Issue 7 (runtime switch) and issue 5 (what the browser relies on): real uvicorn, real Redis,
a real SSE client. Operators move users to polling and back without a deploy; slow links ask
for coarser progress; the built frontend is served at ``/``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.realtime_mode import ModeRule, mode_for
from progress.events import TaskCompleted, TaskUpdated
from progress.redis_server import RedisServer
from progress.redis_store import RedisEventStore, connect
from tests.servers import ApiServer
from tests.sse_client import SseClient

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def frontend_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    (dist / "index.html").write_text("<!doctype html><title>InfiniteScribe</title>")
    (dist / "app.js").write_text("console.log('app')")
    return dist


@pytest.fixture(scope="module")
def api(redis_server: RedisServer, frontend_dir: Path) -> Iterator[ApiServer]:
    # Its own database: the mode is global, and other modules' servers share the Redis server.
    with ApiServer(
        f"{redis_server.url}/3",
        SSE_HEARTBEAT_SECONDS="1",
        SSE_FRONTEND_DIR=str(frontend_dir),
        FLOWER_URL="http://127.0.0.1:5555",
    ) as server:
        yield server


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[RedisEventStore]:
    client = connect(f"{redis_server.url}/3")
    yield RedisEventStore(client)
    client.close()


def auth(jwt: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {jwt}"}


def set_mode(api: ApiServer, mode: str, percent: int = 100) -> httpx.Response:
    admin = api.jwt("operator", roles=("admin",))
    body = {"mode": mode, "percent": percent}
    return httpx.put(f"{api.url}/api/v1/realtime/config", json=body, headers=auth(admin))


def config(api: ApiServer, user: str) -> dict:
    return httpx.get(f"{api.url}/api/v1/realtime/config", headers=auth(api.jwt(user))).json()


def stream(api: ApiServer, user: str, query: str = "") -> SseClient:
    token = api.sse_token(api.jwt(user))
    return SseClient(f"{api.url}/api/v1/events/stream?sse_token={token}{query}")


def test_switch_to_polling_moves_open_streams_at_once_and_back(api: ApiServer) -> None:
    client = stream(api, "writer-a")
    try:
        client.wait_for(lambda ev: any(e.event == "connection.established" for e in ev))
        assert config(api, "writer-a")["mode"] == "sse"
        switched = time.monotonic()
        assert set_mode(api, "polling").status_code == 200
        events = client.wait_for(lambda ev: any(e.event == "realtime.mode" for e in ev), 3)
        assert time.monotonic() - switched < 1.0  # well within one heartbeat
        assert [e.json["mode"] for e in events if e.event == "realtime.mode"] == ["polling"]
        assert client.ended.wait(3), "the server ends the stream after realtime.mode"
        assert config(api, "writer-a")["mode"] == "polling"
        refused = stream(api, "writer-a")
        assert refused.wait_open() == 409
        assert b"realtime_polling" in refused.body
    finally:
        client.close()
        set_mode(api, "sse")
    assert config(api, "writer-a")["mode"] == "sse"
    again = stream(api, "writer-a")
    try:
        assert again.wait_open() == 200
    finally:
        again.close()


def test_percentage_rollout_polls_only_the_chosen_users(api: ApiServer) -> None:
    rule = ModeRule(mode="polling", percent=30)
    users = [f"ab-user-{n}" for n in range(40)]
    try:
        assert set_mode(api, "polling", 30).status_code == 200
        modes = {u: config(api, u)["mode"] for u in users}
    finally:
        set_mode(api, "sse")
    assert modes == {u: mode_for(u, rule) for u in users}
    assert set(modes.values()) == {"sse", "polling"}


def test_only_admins_change_the_mode_and_bad_input_is_explained(api: ApiServer) -> None:
    writer = auth(api.jwt("writer-b"))
    forbidden = httpx.put(
        f"{api.url}/api/v1/realtime/config", json={"mode": "polling"}, headers=writer
    )
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "forbidden"
    invalid = set_mode(api, "carrier-pigeon")
    assert invalid.status_code == 422
    assert "mode" in invalid.text
    assert config(api, "writer-b")["mode"] == "sse"


def test_config_gives_intervals_and_the_flower_link(api: ApiServer) -> None:
    body = config(api, "writer-c")
    assert body["heartbeat_seconds"] == 1
    assert body["poll_interval_seconds"] == 30
    assert body["flower_url"] == "http://127.0.0.1:5555"


def test_coarse_progress_keeps_the_newest_update_and_never_holds_completion(
    api: ApiServer, store: RedisEventStore
) -> None:
    client = stream(api, "slow-link", "&progress_interval_ms=800")
    try:
        client.wait_for(lambda ev: any(e.event == "connection.established" for e in ev))
        for percent in range(1, 21):
            store.append(TaskUpdated(user_id="slow-link", task_id="t1", percent=percent))
        events = client.wait_for(
            lambda ev: any(
                e.event == "task.progress-updated" and e.json["percent"] == 20 for e in ev
            ),
            5,
        )
        percents = [e.json["percent"] for e in events if e.event == "task.progress-updated"]
        assert percents == [1, 20]
        store.append(TaskUpdated(user_id="slow-link", task_id="t1", percent=50))
        store.append(TaskCompleted(user_id="slow-link", task_id="t1", duration_seconds=3))
        events = client.wait_for(
            lambda ev: any(e.event == "task.progress-completed" for e in ev), 0.5
        )
        tail = [e.event for e in events][-2:]
        assert tail == ["task.progress-updated", "task.progress-completed"]
        assert events[-1].id is not None
    finally:
        client.close()


def test_frontend_is_served_with_the_single_page_fallback(api: ApiServer) -> None:
    assert "InfiniteScribe" in httpx.get(f"{api.url}/").text
    assert httpx.get(f"{api.url}/app.js").text == "console.log('app')"
    deep = httpx.get(f"{api.url}/novels/42")
    assert deep.status_code == 200 and "InfiniteScribe" in deep.text
    missing = httpx.get(f"{api.url}/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
