"""Issue 19 item 2: ``POST /api/v1/novels/{id}/cancel`` through the API and a real worker stops
every open step of the novel, names who cancelled, and reveals nothing to anyone else."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from progress.keys import user_stream
from progress.redis_server import RedisServer
from progress.redis_store import RedisEventStore, connect
from tests.servers import ApiServer
from tests.workers import WorkerProcess
from workers import resources
from workers.migrate import upgrade
from workers.settings import WorkerSettings

pytestmark = pytest.mark.integration

CHAPTERS = 6


@pytest.fixture(scope="module")
def api(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """The API and a real worker on one database; chapters take about 2 s each."""
    database = f"sqlite:///{Path(tmp_path_factory.mktemp('cancel-db')) / 'novels.db'}"
    upgrade(database)
    env = {
        "REDIS_URL": f"{redis_server.url}/0",
        "DATABASE_URL": database,
        "WORKER_BROKER_DB": "9",
        "WORKER_RESULT_DB": "10",
        "WORKER_LOCAL_TOKENS_PER_SECOND": "40",
        "WORKER_TOKENS_PER_CHAPTER": "80",
    }
    # The worker process is waited for through this process's Celery app.
    resources.configure(
        WorkerSettings(redis_url=env["REDIS_URL"], database_url=database, broker_db=9, result_db=10)
    )
    with WorkerProcess(env), ApiServer(env["REDIS_URL"], **env) as server:
        yield server
    resources.configure(None)


def auth(api: ApiServer, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.jwt(user)}"}


def read_until(
    redis_url: str, user: str, until: Callable[[list[dict]], bool], timeout: float = 40
) -> list[dict]:
    """The user's stored events once ``until`` holds for them (or at the deadline)."""
    client = connect(redis_url)
    store = RedisEventStore(client)
    deadline = time.monotonic() + timeout
    try:
        while True:
            found = [
                orjson.loads(e.data) for e in store.read_after(user_stream(user), "0-0", 10_000)
            ]
            if until(found) or time.monotonic() > deadline:
                return found
            time.sleep(0.1)
    finally:
        client.close()


def chapter_tasks(events: list[dict]) -> list[str]:
    """Ids of the chapter tasks that started, in order."""
    return [
        e["task_id"]
        for e in events
        if e["type"] == "task.progress-started" and e["task_name"] == "workers.generate_chapter"
    ]


def writing(events: list[dict]) -> list[str]:
    """Ids of the chapter tasks that reported progress."""
    chapters = set(chapter_tasks(events))
    return [
        e["task_id"]
        for e in events
        if e["type"] == "task.progress-updated" and e["task_id"] in chapters
    ]


def ended(events: list[dict]) -> dict[str, dict]:
    """The last event of each task that ended, by task id."""
    return {
        e["task_id"]: e
        for e in events
        if e["type"]
        in {"task.progress-completed", "task.progress-failed", "task.progress-cancelled"}
    }


def test_cancelling_a_novel_stops_its_open_steps_and_names_who_asked(
    api: ApiServer, redis_url: str, user_id: str
) -> None:
    owner = auth(api, user_id)
    body = {"title": "Long", "premise": "A long story", "chapter_count": CHAPTERS}
    novel_id = httpx.post(f"{api.url}/api/v1/novels", json=body, headers=owner).json()["novel_id"]
    read_until(redis_url, user_id, lambda ev: bool(writing(ev)), timeout=30)

    stranger = httpx.post(
        f"{api.url}/api/v1/novels/{novel_id}/cancel", headers=auth(api, f"{user_id}-x")
    )
    assert (stranger.status_code, stranger.json()["error"]["code"]) == (404, "novel_not_found")
    cancelled = httpx.post(f"{api.url}/api/v1/novels/{novel_id}/cancel", headers=owner)
    assert cancelled.status_code == 202
    assert cancelled.json() == {"novel_id": novel_id, "status": "cancelled"}

    # every chapter task starts (queued ones too) and ends
    events = read_until(
        redis_url,
        user_id,
        lambda ev: (
            len(chapter_tasks(ev)) == CHAPTERS and set(chapter_tasks(ev)) <= ended(ev).keys()
        ),
    )
    chapters = set(chapter_tasks(events))
    assert len(chapters) == CHAPTERS
    ends = ended(events)
    outcomes = {ends[task]["type"] for task in chapters}
    assert "task.progress-cancelled" in outcomes
    assert "task.progress-failed" not in outcomes
    for task in chapters:
        if ends[task]["type"] == "task.progress-cancelled":
            assert ends[task]["cancelled_by"] == user_id
    statuses = [e["new_status"] for e in events if e["type"] == "workflow.status-changed"]
    assert statuses[-1] == "cancelled" and "reviewing" not in statuses
    snapshot = httpx.get(f"{api.url}/api/v1/tasks/{next(iter(chapters))}", headers=owner).json()
    assert snapshot["status"] in {"completed", "cancelled"}

    again = httpx.post(f"{api.url}/api/v1/novels/{novel_id}/cancel", headers=owner)
    assert again.json() == {"novel_id": novel_id, "status": "cancelled"}
    novel = httpx.get(f"{api.url}/api/v1/novels/{novel_id}", headers=owner).json()
    assert novel["status"] == "cancelled"
    written = [c for c in novel["chapters"] if c["summary"]]
    assert len(written) < CHAPTERS


def test_a_cancelled_task_names_the_writer_in_its_event_and_snapshot(
    api: ApiServer, redis_url: str, user_id: str
) -> None:
    owner = auth(api, user_id)
    body = {"title": "One", "premise": "A short story", "chapter_count": 2}
    httpx.post(f"{api.url}/api/v1/novels", json=body, headers=owner).raise_for_status()
    task = writing(read_until(redis_url, user_id, lambda ev: bool(writing(ev))))[0]
    response = httpx.post(f"{api.url}/api/v1/tasks/{task}/cancel", headers=owner)
    assert response.status_code == 202
    events = read_until(redis_url, user_id, lambda ev: task in ended(ev))
    end = ended(events)[task]
    assert (end["type"], end["cancelled_by"]) == ("task.progress-cancelled", user_id)
    snapshot = httpx.get(f"{api.url}/api/v1/tasks/{task}", headers=owner).json()
    assert (snapshot["status"], snapshot["cancelled_by"]) == ("cancelled", user_id)


def test_cancelling_while_redis_is_down_answers_503_and_changes_nothing(
    tmp_path: Path, user_id: str
) -> None:
    database = f"sqlite:///{tmp_path / 'novels.db'}"
    upgrade(database)
    with RedisServer() as redis, ApiServer(f"{redis.url}/0", DATABASE_URL=database) as api:
        headers = auth(api, user_id)
        body = {"title": "Offline", "premise": "no store", "chapter_count": 2}
        created = httpx.post(f"{api.url}/api/v1/novels", json=body, headers=headers)
        assert created.status_code == 202, created.text
        novel_id = created.json()["novel_id"]
        redis.stop()
        refused = httpx.post(f"{api.url}/api/v1/novels/{novel_id}/cancel", headers=headers)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "store_unavailable"
        novel = httpx.get(f"{api.url}/api/v1/novels/{novel_id}", headers=headers).json()
        assert novel["status"] == "queued"
