"""Issue 17: a Celery app of another team (``tests/thirdparty/app.py``: public ``progress``
names only, configured as the README says) gets the whole guarantee through the real SSE
endpoint, on SQLite and a real PostgreSQL: live events; important events replayed from SQL
after FLUSHALL with the old cursor; a SIGKILLed worker's task stalled then failed; a cancelled
task cancelled. Real worker processes, real Redis (its own: it is flushed), real uvicorn.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from progress.redis_server import RedisServer
from progress.redis_store import connect
from tests.postgres_server import PostgresServer
from tests.servers import ApiServer
from tests.sse_client import SseClient, SseEvent
from tests.workers import WorkerProcess

pytestmark = pytest.mark.integration

APP = "tests.thirdparty.app:app"


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def journal_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database migrated by the library's own command (no application tables)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'thirdparty.db'}"
        migrate(url)
        yield url
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"tp_{uuid.uuid4().hex[:16]}"
    url = server.create_database(name)
    try:
        migrate(url)
        yield url
    finally:
        server.drop_database(name)


def migrate(url: str) -> None:
    command = [sys.executable, "-m", "progress.migrate", "upgrade", url]
    subprocess.run(command, check=True, timeout=60, capture_output=True)


def send(env: dict[str, str], user: str, steps: int, pause: float = 0.2) -> str:
    """Send ``count`` as ``user`` from the app's own module (a producer process); the task id."""
    command = [sys.executable, "-m", "tests.thirdparty.app", "count", user, str(steps), str(pause)]
    done = subprocess.run(command, env=env, check=True, timeout=60, capture_output=True, text=True)
    return done.stdout.strip()


def of_task(task_id: str, *types: str) -> Callable[[list[SseEvent]], bool]:
    """Wait condition: every type of ``types`` arrived for ``task_id``."""
    return lambda events: set(types) <= {e.event for e in events if task_of(e) == task_id}


def task_of(event: SseEvent) -> str | None:
    return event.json.get("task_id") if event.event.startswith("task.") else None


def types_of(events: list[SseEvent], task_id: str) -> list[str]:
    return [e.event for e in events if task_of(e) == task_id]


def open_stream(api: ApiServer, user: str, cursor: str | None = None) -> SseClient:
    url = f"{api.url}/api/v1/events/stream?sse_token={api.sse_token(api.jwt(user))}"
    client = SseClient(url, {"Last-Event-ID": cursor} if cursor else {})
    client.wait_for(lambda events: any(e.event == "connection.established" for e in events))
    return client


def test_a_third_party_app_gets_live_events_replay_stalls_and_cancels(
    own_redis: RedisServer, journal_url: str, tmp_path: Path
) -> None:
    redis_url = f"{own_redis.url}/0"
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": journal_url,
        "THIRDPARTY_BROKER_URL": f"{own_redis.url}/1",
        "AUDIT_ALLOW_DEV_KEY": "true",
        "PROGRESS_HEARTBEAT_SECONDS": "1",
        "PROGRESS_WATCHDOG_SECONDS": "0.5",
        "PROGRESS_OUTBOX_DISPATCH_SECONDS": "1",
    }
    # The SSE tier (the project's API) checks the demo app's tables too at start.
    subprocess.run([sys.executable, "-m", "workers.migrate", journal_url], check=True, timeout=60)
    user = f"tp-{uuid.uuid4().hex[:10]}"
    workers: list[WorkerProcess] = []
    api = ApiServer(redis_url, DATABASE_URL=journal_url, cwd=tmp_path).start()
    try:
        victim = WorkerProcess(env, concurrency=2, app=APP).start(60)
        workers.append(victim)
        seen = open_stream(api, user)

        done = send(env, user, 5)
        seen.wait_for(of_task(done, "task.progress-completed"), timeout=30)
        assert types_of(seen.events, done)[0] == "task.progress-started"
        assert "task.progress-updated" in types_of(seen.events, done)

        cancelled = send(env, user, 200)
        seen.wait_for(of_task(cancelled, "task.progress-updated"), timeout=30)
        connect(redis_url).set(f"thirdparty:cancel:{cancelled}", "1")
        seen.wait_for(of_task(cancelled, "task.progress-cancelled"), timeout=30)

        doomed = send(env, user, 1000)
        seen.wait_for(of_task(doomed, "task.progress-updated"), timeout=30)
        victim.stop(signal.SIGKILL)
        watcher = WorkerProcess(env, concurrency=2, beat=True, app=APP).start(60)
        workers.append(watcher)
        seen.wait_for(of_task(doomed, "task.progress-stalled", "task.progress-failed"), 60)
        doomed_types = types_of(seen.events, doomed)
        assert doomed_types.index("task.progress-stalled") < doomed_types.index(
            "task.progress-failed"
        )
        cursor = next(e.id for e in seen.events if task_of(e) == done)
        seen.close()

        connect(redis_url).flushall()
        resumed = open_stream(api, user, cursor)
        expected = [
            (cancelled, "task.progress-cancelled"),
            (doomed, "task.progress-failed"),
        ]
        resumed.wait_for(lambda events: all(of_task(t, k)(events) for t, k in expected), 30)
        assert any(e.event == "stream.reset" for e in resumed.events)
        replayed = [(task_of(e), e.event) for e in resumed.events if task_of(e)]
        assert (done, "task.progress-completed") in replayed
        assert all(kind in IMPORTANT for _, kind in replayed), replayed
        resumed.close()
    finally:
        api.close()
        for worker in workers:
            worker.close()


IMPORTANT = {"task.progress-completed", "task.progress-failed", "task.progress-cancelled"}
