"""Issue 3 (R1, R2): real uvicorn, real Redis, an SSE client over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from progress.events import SystemNotification, TaskStarted, TaskUpdated
from progress.redis_server import RedisServer
from progress.redis_store import RedisEventStore, connect
from tests.servers import ApiServer
from tests.sse_client import SseClient, SseEvent

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(redis_server: RedisServer) -> Iterator[ApiServer]:
    with ApiServer(f"{redis_server.url}/0", SSE_HEARTBEAT_SECONDS="1") as server:
        yield server


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisEventStore]:
    client = connect(redis_url)
    yield RedisEventStore(client)
    client.close()


def open_stream(api: ApiServer, jwt: str, cursor: str | None = None) -> SseClient:
    url = f"{api.url}/api/v1/events/stream?sse_token={api.sse_token(jwt)}"
    headers = {"Last-Event-ID": cursor} if cursor else {}
    client = SseClient(url, headers)
    client.wait_for(lambda events: any(e.event == "connection.established" for e in events))
    return client


def updates(events: list[SseEvent]) -> list[float]:
    return [e.json["percent"] for e in events if e.event == "task.progress-updated"]


def test_stream_starts_with_established_and_has_proxy_headers(api: ApiServer, user_id: str) -> None:
    client = open_stream(api, api.jwt(user_id))
    try:
        first = client.events[0]
        assert first.event == "connection.established"
        assert first.json["connection_id"]
        assert first.retry is not None and first.id is not None
        assert client.response_headers is not None
        assert client.response_headers["content-type"].startswith("text/event-stream")
        assert client.response_headers["cache-control"] == "no-cache"
        assert client.response_headers["x-accel-buffering"] == "no"
        client.wait_for(lambda events: any(e.event == "heartbeat" for e in events), timeout=5)
    finally:
        client.close()


def test_stored_event_reaches_its_user_and_nobody_else(
    api: ApiServer, store: RedisEventStore, user_id: str
) -> None:
    other = f"{user_id}-other"
    mine, theirs = open_stream(api, api.jwt(user_id)), open_stream(api, api.jwt(other))
    try:
        store.append(TaskStarted(user_id=user_id, task_id="secret-task", task_name="outline"))
        store.append(TaskUpdated(user_id=user_id, task_id="secret-task", percent=10))
        mine.wait_for(lambda events: updates(events) == [10])
        theirs.wait_for(lambda events: any(e.event == "heartbeat" for e in events), timeout=5)
        assert not theirs.of_type("task.")

        other_auth = {"Authorization": f"Bearer {api.jwt(other)}"}
        history = httpx.get(f"{api.url}/api/v1/events/history", headers=other_auth).json()
        # broadcasts of other tests may be there; nothing of this user's task may
        assert [e for e in history["events"] if e.get("task_id") == "secret-task"] == []
        assert all(e["audience"] == "broadcast" for e in history["events"])
        task = httpx.get(f"{api.url}/api/v1/tasks/secret-task", headers=other_auth)
        assert task.status_code == 404
        assert task.json()["error"]["code"] == "task_not_found"
        mine_auth = {"Authorization": f"Bearer {api.jwt(user_id)}"}
        snapshot = httpx.get(f"{api.url}/api/v1/tasks/secret-task", headers=mine_auth).json()
        assert (snapshot["status"], snapshot["percent"]) == ("running", 10)
    finally:
        mine.close()
        theirs.close()


def test_resume_replays_exactly_the_missed_events_then_goes_live(
    api: ApiServer, store: RedisEventStore, user_id: str
) -> None:
    jwt = api.jwt(user_id)
    first = open_stream(api, jwt)
    store.append(TaskUpdated(user_id=user_id, task_id="t", percent=0))
    first.wait_for(lambda events: updates(events) == [0])
    cursor = first.last_id
    first.close()

    for percent in range(1, 21):
        store.append(TaskUpdated(user_id=user_id, task_id="t", percent=percent))
    second = open_stream(api, jwt, cursor)
    try:
        second.wait_for(lambda events: len(updates(events)) == 20)
        store.append(TaskUpdated(user_id=user_id, task_id="t", percent=99))
        events = second.wait_for(lambda events: 99 in updates(events))
        assert updates(events) == [*range(1, 21), 99]
        ids = [e.id for e in events if e.event == "task.progress-updated"]
        assert len(set(ids)) == len(ids)
    finally:
        second.close()


def test_resume_with_the_query_parameter_works_like_the_header(
    api: ApiServer, store: RedisEventStore, user_id: str
) -> None:
    jwt = api.jwt(user_id)
    first = open_stream(api, jwt)
    cursor = first.last_id
    first.close()
    store.append(TaskUpdated(user_id=user_id, task_id="t", percent=5))

    url = f"{api.url}/api/v1/events/stream?sse_token={api.sse_token(jwt)}&last_event_id={cursor}"
    second = SseClient(url)
    try:
        second.wait_for(lambda events: updates(events) == [5])
    finally:
        second.close()


def test_session_events_reach_only_that_session(
    api: ApiServer, store: RedisEventStore, user_id: str
) -> None:
    laptop = open_stream(api, api.jwt(user_id, session_id="laptop"))
    phone = open_stream(api, api.jwt(user_id, session_id="phone"))
    try:
        store.append(
            TaskUpdated(
                user_id=user_id, session_id="laptop", audience="session", task_id="t", percent=7
            )
        )
        store.append(TaskUpdated(user_id=user_id, task_id="t", percent=8))
        laptop.wait_for(lambda events: updates(events) == [7, 8])
        phone.wait_for(lambda events: updates(events) == [8])
    finally:
        laptop.close()
        phone.close()


def test_broadcast_reaches_every_connection(
    api: ApiServer, store: RedisEventStore, user_id: str
) -> None:
    clients = [open_stream(api, api.jwt(f"{user_id}-{n}")) for n in range(3)]
    try:
        store.append(SystemNotification(audience="broadcast", level="info", message="hello all"))
        for client in clients:
            client.wait_for(lambda events: any(e.event == "system.notification" for e in events))
    finally:
        for client in clients:
            client.close()


def test_connection_limit_refuses_the_third_with_retry_after(api: ApiServer, user_id: str) -> None:
    jwt = api.jwt(user_id)
    first, second = open_stream(api, jwt), open_stream(api, jwt)
    try:
        third = SseClient(f"{api.url}/api/v1/events/stream?sse_token={api.sse_token(jwt)}")
        assert third.wait_open() == 429
        assert third.response_headers is not None
        assert 5 <= int(third.response_headers["retry-after"]) <= 20
        assert b"too_many_connections" in third.body
        third.close()
        first.close()
        fourth = None
        for _ in range(50):
            fourth = SseClient(f"{api.url}/api/v1/events/stream?sse_token={api.sse_token(jwt)}")
            if fourth.wait_open() == 200:
                break
            fourth.close()
        assert fourth is not None and fourth.status == 200, "a closed stream frees its slot"
        fourth.close()
    finally:
        second.close()


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (None, "token_missing"),
        ("not-a-token", "token_malformed"),
        ("expired", "token_expired"),
        ("never-issued", "token_reused"),
        ("altered", "token_reused"),
        ("bearer-jwt", "token_wrong_type"),
    ],
)
def test_bad_tokens_get_401_saying_why(
    api: ApiServer, user_id: str, token: str | None, code: str
) -> None:
    from api.auth.tokens import mint_jwt
    from tests.servers import JWT_SECRET

    issued = api.sse_token(api.jwt(user_id))
    values = {
        "expired": f"sst1_1_{issued[-32:]}",
        "never-issued": f"sst1_4102444800_{'A' * 32}",
        "altered": issued[:-1] + ("B" if issued[-1] != "B" else "C"),
        "bearer-jwt": mint_jwt(JWT_SECRET, user_id),
    }
    query = "" if token is None else f"?sse_token={values.get(token, token)}"
    response = httpx.get(f"{api.url}/api/v1/events/stream{query}")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code


def test_reused_sse_token_is_refused(api: ApiServer, user_id: str) -> None:
    token = api.sse_token(api.jwt(user_id))
    first = SseClient(f"{api.url}/api/v1/events/stream?sse_token={token}")
    try:
        assert first.wait_open() == 200
        again = httpx.get(f"{api.url}/api/v1/events/stream?sse_token={token}")
        assert again.status_code == 401
        assert again.json()["error"]["code"] == "token_reused"
    finally:
        first.close()


def test_redis_holds_no_usable_sse_token_only_its_digest(
    api: ApiServer, user_id: str, store: RedisEventStore
) -> None:
    token = api.sse_token(api.jwt(user_id))
    entries = {
        key: store.client.get(key) for key in store.client.scan_iter("rt:sse-token:*", count=1000)
    }
    assert entries, "an issued token has its entry"
    assert not any(token in f"{key}{value}" for key, value in entries.items())
    assert any(user_id in str(value) for value in entries.values())
    for key in entries:
        assert 0 < store.client.pttl(key) <= 60_000


def test_bearer_endpoints_refuse_missing_and_bad_jwts(api: ApiServer) -> None:
    missing = httpx.post(f"{api.url}/api/v1/auth/sse-token")
    bad = httpx.post(f"{api.url}/api/v1/auth/sse-token", headers={"Authorization": "Bearer x.y"})
    assert (missing.status_code, missing.json()["error"]["code"]) == (401, "token_missing")
    assert (bad.status_code, bad.json()["error"]["code"]) == (401, "token_malformed")


@pytest.mark.parametrize("cursor", ["garbage", "v1,u:x~zz~1-0", "v1,b~ff~1"])
def test_invalid_cursor_is_400(api: ApiServer, user_id: str, cursor: str) -> None:
    token = api.sse_token(api.jwt(user_id))
    response = httpx.get(
        f"{api.url}/api/v1/events/stream?sse_token={token}", headers={"Last-Event-ID": cursor}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_cursor"


def test_token_never_appears_in_the_access_log(api: ApiServer, user_id: str) -> None:
    token = api.sse_token(api.jwt(user_id))
    httpx.get(f"{api.url}/api/v1/events/stream?sse_token={token}&last_event_id=bad")
    assert "sse_token=[redacted]" in api.log_text
    assert token not in api.log_text


def test_history_pages_with_the_cursor(
    api: ApiServer, store: RedisEventStore, user_id: str
) -> None:
    for percent in range(5):
        store.append(TaskUpdated(user_id=user_id, task_id="t", percent=percent))
    auth = {"Authorization": f"Bearer {api.jwt(user_id)}"}

    seen: list[float] = []
    params: dict[str, str | int] = {"limit": 2}
    for _ in range(50):
        page = httpx.get(f"{api.url}/api/v1/events/history", params=params, headers=auth).json()
        assert len(page["events"]) <= 2
        seen += [e["percent"] for e in page["events"] if e.get("user_id") == user_id]
        params = {"limit": 2, "since_id": page["cursor"]}
        if not page["has_more"]:
            break

    assert seen == [0, 1, 2, 3, 4]


def test_flushed_history_gives_a_stream_reset_with_task_snapshots(
    api: ApiServer, store: RedisEventStore, user_id: str
) -> None:
    jwt = api.jwt(user_id)
    first = open_stream(api, jwt)
    cursor = first.last_id
    first.close()
    stream_keys = store.client.keys(f"rt:{{u:{user_id}}}:*")
    store.client.delete(*stream_keys)
    store.append(TaskStarted(user_id=user_id, task_id="t-new", task_name="outline"))

    second = open_stream(api, jwt, cursor)
    try:
        events = second.wait_for(lambda events: any(e.event == "stream.reset" for e in events))
        reset = next(e for e in events if e.event == "stream.reset")
        assert [t["task_id"] for t in reset.json["tasks"]] == ["t-new"]
        assert reset.id is not None
    finally:
        second.close()


def test_health_reports_redis_and_connections(api: ApiServer, user_id: str) -> None:
    client = open_stream(api, api.jwt(user_id))
    try:
        body = httpx.get(f"{api.url}/api/v1/events/health").json()
        assert body["status"] == "ok"
        assert body["redis"]["reachable"] is True
        assert body["connections"] >= 1
        assert body["instance_id"].startswith("api-")
    finally:
        client.close()


def test_content_events_reach_members_until_their_access_is_revoked(
    api: ApiServer, store: RedisEventStore, redis_url: str, user_id: str
) -> None:
    import asyncio

    from api.auth.authz import RedisNovelAccess
    from progress.events import NovelCreated
    from progress.redis_store import connect_async

    owner, member, stranger = user_id, f"{user_id}-member", f"{user_id}-stranger"
    novel = f"novel-{user_id}"

    async def access(action: str) -> None:
        client = connect_async(redis_url)
        await getattr(RedisNovelAccess(client), action)(member, novel)
        await client.aclose()

    asyncio.run(access("grant"))
    streams = {who: open_stream(api, api.jwt(who)) for who in (owner, member, stranger)}
    try:
        created = NovelCreated(user_id=owner, novel_id=novel, title="Tide")
        store.append(created, [member, stranger])
        for who in (owner, member):
            streams[who].wait_for(lambda ev: any(e.event == "content.novel-created" for e in ev))
        asyncio.run(access("revoke"))
        store.append(NovelCreated(user_id=owner, novel_id=novel, title="Tide II"), [member])
        streams[owner].wait_for(lambda ev: sum(e.event == "content.novel-created" for e in ev) == 2)
        streams[member].wait_for(lambda ev: any(e.event == "heartbeat" for e in ev[2:]), 5)
        assert [e.json["title"] for e in streams[member].of_type("content.")] == ["Tide"]
        assert streams[stranger].of_type("content.") == []
    finally:
        for stream in streams.values():
            stream.close()


def test_a_jwt_about_to_expire_gets_no_sse_token(api: ApiServer, user_id: str) -> None:
    almost_expired = api.jwt(user_id, ttl=10)  # the server warns 30 s before expiry
    response = httpx.post(
        f"{api.url}/api/v1/auth/sse-token", headers={"Authorization": f"Bearer {almost_expired}"}
    )
    assert (response.status_code, response.json()["error"]["code"]) == (401, "token_expiring")
