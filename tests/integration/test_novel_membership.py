"""Issue 15 (4): ``members`` given at creation are invitations. Before accepting, an invited
user's stream receives nothing of the novel (not its title, not its content) and the novel
is not theirs to read; after accepting, its content reaches them live. Real API, real worker,
real Redis, a real database."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

import progress
from progress.keys import user_stream
from progress.redis_server import RedisServer
from progress.redis_store import RedisEventStore, connect
from progress.settings import ProgressSettings
from tests.servers import ApiServer
from tests.sse_client import SseClient, SseEvent
from tests.workers import WorkerProcess
from workers import resources
from workers.migrate import upgrade
from workers.settings import WorkerSettings

pytestmark = pytest.mark.integration

BROKER_DB, RESULT_DB = 13, 14


@pytest.fixture(scope="module")
def stack(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ApiServer, RedisEventStore]]:
    """The API and one slow worker (a chapter takes about 2 s) on one database."""
    database = f"sqlite:///{Path(tmp_path_factory.mktemp('members')) / 'novels.db'}"
    upgrade(database)
    redis_url = f"{redis_server.url}/0"
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database,
        "WORKER_BROKER_DB": str(BROKER_DB),
        "WORKER_RESULT_DB": str(RESULT_DB),
        "WORKER_LOCAL_TOKENS_PER_SECOND": "20",
        "WORKER_TOKENS_PER_CHAPTER": "40",
    }
    resources.configure(
        WorkerSettings(
            redis_url=redis_url, database_url=database, broker_db=BROKER_DB, result_db=RESULT_DB
        )
    )
    progress.configure(ProgressSettings(redis_url=redis_url))
    store = RedisEventStore(connect(redis_url))
    try:
        with ApiServer(redis_url, SSE_HEARTBEAT_SECONDS="1", **env) as api:
            with WorkerProcess(env, concurrency=1):
                yield api, store
    finally:
        store.close()
        progress.configure(None)
        resources.configure(None)


def auth(api: ApiServer, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.jwt(user)}"}


def stored(store: RedisEventStore, user: str) -> list[dict]:
    return [orjson.loads(e.data) for e in store.read_after(user_stream(user), "0-0", 10_000)]


def wait_stored(
    store: RedisEventStore, user: str, until: Callable[[list[dict]], bool], timeout: float = 30
) -> list[dict]:
    deadline = time.monotonic() + timeout
    while not until(found := stored(store, user)):
        assert time.monotonic() < deadline, [e["type"] for e in found]
        time.sleep(0.1)
    return found


def of_novel(events: list[SseEvent], novel_id: str) -> list[SseEvent]:
    return [e for e in events if e.data.startswith("{") and e.json.get("novel_id") == novel_id]


def test_an_invited_user_receives_nothing_until_accepting_then_the_content(
    stack: tuple[ApiServer, RedisEventStore], user_id: str
) -> None:
    api, store = stack
    owner, invitee, decliner = user_id, f"{user_id}-invitee", f"{user_id}-decliner"
    streams = {
        who: SseClient(f"{api.url}/api/v1/events/stream?sse_token={api.sse_token(api.jwt(who))}")
        for who in (invitee, decliner)
    }
    try:
        for stream in streams.values():
            stream.wait_for(lambda ev: any(e.event == "connection.established" for e in ev))
        body = {
            "title": "Buy cheap watches at spam.example",
            "premise": "An attacker's advertisement",
            "chapter_count": 3,
            "members": [invitee, decliner],
        }
        created = httpx.post(f"{api.url}/api/v1/novels", json=body, headers=auth(api, owner))
        assert created.status_code == 202, created.text
        novel_id = created.json()["novel_id"]
        wait_stored(
            store, owner, lambda ev: any(e["type"] == "content.chapter-updated" for e in ev)
        )

        # Invited, not accepted: nothing stored for them, nothing on their streams (heartbeats
        # went by meanwhile), the novel is not theirs to read, but the invitation is listed.
        for who in (invitee, decliner):
            streams[who].wait_for(lambda ev: sum(e.event == "heartbeat" for e in ev) >= 2, 5)
            assert stored(store, who) == []
            assert of_novel(streams[who].events, novel_id) == []
            assert "spam.example" not in "".join(e.data for e in streams[who].events)
            hidden = httpx.get(f"{api.url}/api/v1/novels/{novel_id}", headers=auth(api, who))
            assert hidden.status_code == 404
            assert httpx.get(f"{api.url}/api/v1/novels", headers=auth(api, who)).json() == []
        invitations = httpx.get(f"{api.url}/api/v1/invitations", headers=auth(api, invitee))
        assert [(i["novel_id"], i["owner_id"]) for i in invitations.json()] == [(novel_id, owner)]

        url = f"{api.url}/api/v1/novels/{novel_id}/membership"
        declined = httpx.delete(url, headers=auth(api, decliner))
        assert declined.status_code == 204
        assert httpx.delete(url, headers=auth(api, decliner)).status_code == 404
        accepted = httpx.post(url, headers=auth(api, invitee))
        assert accepted.status_code == 200, accepted.text
        assert httpx.get(f"{api.url}/api/v1/invitations", headers=auth(api, invitee)).json() == []
        assert httpx.post(url, headers=auth(api, f"{user_id}-uninvited")).status_code == 404

        # Accepted: the rest of the novel's content arrives live.
        streams[invitee].wait_for(
            lambda ev: any(e.event == "content.chapter-updated" for e in of_novel(ev, novel_id)),
            15,
        )
        wait_stored(store, owner, lambda ev: any(e.get("new_status") == "done" for e in ev))
        readable = httpx.get(f"{api.url}/api/v1/novels/{novel_id}", headers=auth(api, invitee))
        assert readable.json()["status"] == "done"
        assert of_novel(streams[decliner].events, novel_id) == []
        assert stored(store, decliner) == []
    finally:
        for stream in streams.values():
            stream.close()
