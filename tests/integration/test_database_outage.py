"""Issue 15, items 10 and 13: PostgreSQL stopped while tasks fail and an admin sends a notice;
an API or worker started on a database that was never migrated. Issue 19 (4): the writer whose
tasks fail meanwhile gets one automatic ``system.error``, and one notice once it is back.

Real PostgreSQL (this module's own cluster: stopping the session's would break other tests),
real Redis, real uvicorn, a real Celery worker.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import orjson
import pytest
from sqlalchemy import text

import progress
from progress.audit_log import AuditLog
from progress.events import TaskCompleted
from progress.journal_spill import RedisJournalSpill
from progress.keys import user_stream
from progress.outbox import placements_of
from progress.redis_server import RedisServer
from progress.redis_store import RedisEventStore, connect
from progress.sealing import DEV_AUDIT_KEY, Sealer
from progress.settings import ProgressSettings
from progress.sql import make_engine, make_sessions
from tests.postgres_server import PostgresServer
from tests.servers import ApiServer
from tests.workers import WorkerProcess
from workers import resources
from workers.migrate import upgrade
from workers.settings import WorkerSettings

pytestmark = pytest.mark.integration

T = TypeVar("T")

#: How long PostgreSQL stays down, as in the chaos run that found the defects.
OUTAGE_SECONDS = 15
#: No failure for this long after a success ends an outage (WORKER_OUTAGE_RECOVERY_SECONDS).
RECOVERY_SECONDS = 1


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def until(probe: Callable[[], T], done: Callable[[T], bool], timeout: float = 30) -> T:
    """Call ``probe`` until ``done`` holds for its answer (or the deadline passes)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = probe()
        if done(answer) or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


def stored_events(store: RedisEventStore, user: str) -> list[dict]:
    return [orjson.loads(e.data) for e in store.read_after(user_stream(user), "0-0", 10_000)]


def journaled(database_url: str, user: str) -> list[tuple[str, str]]:
    """(event id, status) of every audit row of ``user``."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT event_id, status FROM sse_event_audit WHERE user_id = :u"),
                {"u": user},
            )
            return [(row.event_id, row.status) for row in rows]
    finally:
        engine.dispose()


def fail_tasks(user: str, count: int) -> None:
    """Send ``count`` tasks of ``user`` that fail (no such novel, or no database to read it)."""
    with progress.acting_as(user, None):
        for _ in range(count):
            resources.celery_app().send_task(
                "workers.create_novel", args=["no-such-novel"], ignore_result=True
            )


def failures(events: list[dict]) -> int:
    return sum(e["type"] == "task.progress-failed" for e in events)


def health(api: ApiServer) -> httpx.Response:
    return httpx.get(f"{api.url}/api/v1/events/health", timeout=5)


def assert_database_unavailable(response: httpx.Response, server: PostgresServer) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) > 0
    assert response.json()["error"]["code"] == "database_unavailable"
    for detail in (str(server.port), server.host, "psycopg", "connection"):
        assert detail not in response.json()["error"]["message"]


def test_a_database_outage_answers_503_and_every_important_event_reaches_the_journal_once(
    own_postgres: PostgresServer, own_redis: RedisServer, user_id: str
) -> None:
    database_url = own_postgres.create_database(f"outage_{uuid.uuid4().hex[:12]}")
    upgrade(database_url)
    redis_url = f"{own_redis.url}/0"
    resources.configure(
        WorkerSettings(redis_url=redis_url, database_url=database_url, broker_db=1, result_db=2)
    )
    progress.configure(ProgressSettings(redis_url=redis_url))
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "WORKER_BROKER_DB": "1",
        "WORKER_RESULT_DB": "2",
        "WORKER_OUTAGE_RECOVERY_SECONDS": str(RECOVERY_SECONDS),
    }
    api = ApiServer(redis_url, DATABASE_URL=database_url, SSE_DATABASE_PROBE_SECONDS="0.3")
    worker = WorkerProcess(env, concurrency=2)
    store = RedisEventStore(connect(redis_url))
    outage = False
    try:
        api.start()
        worker.start()
        writer = {"Authorization": f"Bearer {api.jwt(user_id)}"}
        ops = {"Authorization": f"Bearer {api.jwt('ops-admin', roles=('admin',))}"}
        notice = {
            "level": "critical",
            "message": "Writing is paused",
            "target": {"audience": "users", "user_ids": [user_id]},
        }
        novel = {"title": "Tide", "premise": "a premise", "chapter_count": 1}

        own_postgres.stop()
        outage, stopped_at = True, time.monotonic()
        fail_tasks(user_id, 10)
        down = until(lambda: health(api), lambda r: not r.json()["database"]["reachable"])
        assert down.status_code == 200
        assert down.json()["status"] == "degraded"

        v1 = f"{api.url}/api/v1"
        assert_database_unavailable(httpx.get(f"{v1}/novels", headers=writer), own_postgres)
        assert_database_unavailable(httpx.get(f"{v1}/novels/n1", headers=writer), own_postgres)
        assert_database_unavailable(
            httpx.post(f"{v1}/novels", json=novel, headers=writer), own_postgres
        )
        assert_database_unavailable(httpx.get(f"{v1}/admin/audit", headers=ops), own_postgres)
        refused = httpx.post(f"{v1}/admin/notifications", json=notice, headers=ops)
        assert_database_unavailable(refused, own_postgres)

        sent_tasks = 10
        while True:  # keep tasks failing for the 15 s of the reported outage
            failed = until(
                lambda: stored_events(store, user_id),
                lambda events, want=sent_tasks: failures(events) == want,
            )
            assert failures(failed) == sent_tasks, worker.log_text
            if time.monotonic() - stopped_at > OUTAGE_SECONDS:
                break
            fail_tasks(user_id, 2)
            sent_tasks += 2
        assert not [e for e in failed if e["type"] == "system.notification"]
        # Issue 19 (4): the outage detector told the writer once, not once per failed task.
        automatic = [e for e in failed if e["type"] == "system.error"]
        assert len(automatic) == 1, automatic
        assert "saving" in automatic[0]["affected_scope"] and automatic[0]["suggested_action"]

        own_postgres.start()
        outage = False
        up = until(lambda: health(api), lambda r: r.json()["database"]["reachable"])
        assert (up.status_code, up.json()["status"]) == (200, "ok")
        sent = httpx.post(f"{v1}/admin/notifications", json=notice, headers=ops)
        assert sent.status_code == 202, sent.text

        # A task that reads the database succeeds and no task failed on it for the recovery
        # period: the outage is over, the writer hears so. A task may still fail while the
        # database starts (seen: 0.3 s before the first watchdog), so, as the beat would, the
        # watchdog runs again after the recovery period.
        for _ in range(3):
            resources.celery_app().send_task("workers.watchdog", ignore_result=True)
            time.sleep(RECOVERY_SECONDS + 0.2)
        events = until(
            lambda: stored_events(store, user_id),
            lambda found: [e["type"] for e in found].count("system.notification") >= 2,
        )
        notices = [e for e in events if e["type"].startswith("system.")]
        assert [(e["type"], e.get("level")) for e in notices] == [
            ("system.error", None),
            ("system.notification", "critical"),  # the admin's
            ("system.notification", "info"),  # the recovery
        ]
        important = {e["event_id"] for e in events if e["important"]}
        assert len(important) == sent_tasks + 3  # + the automatic error and recovery notices
        rows = until(
            lambda: journaled(database_url, user_id),
            lambda found: (
                {event_id for event_id, status in found if status == "published"} >= important
            ),
        )
        assert sorted(event_id for event_id, _ in rows) == sorted(important)
        assert {status for _, status in rows} == {"published"}
    finally:
        if outage:
            own_postgres.start()
        store.close()
        worker.close()
        api.close()
        progress.configure(None)
        resources.configure(None)


def test_health_says_ok_after_a_database_outage_only_once_the_journal_holds_its_events(
    own_postgres: PostgresServer, own_redis: RedisServer, user_id: str
) -> None:
    """The chaos run's database-stop: three ``task.progress-failed`` of the outage were in the
    users' streams but not in the journal when health already said all well (they were still
    in the spill, waiting for the API's next probe or the workers' next dispatcher run)."""
    database_url = own_postgres.create_database(f"catchup_{uuid.uuid4().hex[:12]}")
    upgrade(database_url)
    redis_url = f"{own_redis.url}/0"
    resources.configure(
        WorkerSettings(redis_url=redis_url, database_url=database_url, broker_db=1, result_db=2)
    )
    progress.configure(ProgressSettings(redis_url=redis_url))
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "WORKER_BROKER_DB": "1",
        "WORKER_RESULT_DB": "2",
    }
    # The API's periodic probe would drain the spill within its period, racing the check
    # below: with a long period, health alone must make "ok" mean "the journal caught up".
    api = ApiServer(redis_url, DATABASE_URL=database_url, SSE_DATABASE_PROBE_SECONDS="600")
    worker = WorkerProcess(env, concurrency=2)  # no beat: no dispatcher run drains the spill
    store = RedisEventStore(connect(redis_url))
    outage = False
    try:
        api.start()
        worker.start()
        own_postgres.stop()
        outage = True
        fail_tasks(user_id, 3)
        failed = until(lambda: stored_events(store, user_id), lambda events: failures(events) == 3)
        assert failures(failed) == 3, worker.log_text

        own_postgres.start()
        outage = False
        up = until(lambda: health(api), lambda r: r.json()["status"] == "ok")
        assert (up.status_code, up.json()["status"]) == (200, "ok"), up.text
        important = {e["event_id"] for e in stored_events(store, user_id) if e["important"]}
        assert len(important) == 3
        rows = journaled(database_url, user_id)
        assert sorted(event_id for event_id, _ in rows) == sorted(important), up.text
        assert {status for _, status in rows} == {"published"}
        assert up.json()["database"]["journal_spilled"] == 0
    finally:
        if outage:
            own_postgres.start()
        store.close()
        worker.close()
        api.close()
        progress.configure(None)
        resources.configure(None)


def test_an_api_or_worker_on_an_unmigrated_database_refuses_to_start_and_says_why(
    own_postgres: PostgresServer, redis_server: RedisServer
) -> None:
    database_url = own_postgres.create_database(f"bare_{uuid.uuid4().hex[:12]}")
    redis_url = f"{redis_server.url}/0"
    api = ApiServer(redis_url, DATABASE_URL=database_url)
    resources.configure(
        WorkerSettings(redis_url=redis_url, database_url=database_url, broker_db=5, result_db=6)
    )
    env = {"REDIS_URL": redis_url, "DATABASE_URL": database_url, "WORKER_BROKER_DB": "5"}
    worker = WorkerProcess({**env, "WORKER_RESULT_DB": "6"})
    try:
        with pytest.raises(RuntimeError, match="run python -m workers.migrate"):
            api.start()
        assert "database schema is at no revision (empty database), expected" in api.log_text
        with pytest.raises(RuntimeError, match="run python -m workers.migrate"):
            worker.start()
    finally:
        worker.close()
        api.close()
        resources.configure(None)


def test_an_api_on_the_default_sqlite_database_migrates_it_and_answers(
    redis_server: RedisServer, tmp_path: Path, user_id: str
) -> None:
    api = ApiServer(f"{redis_server.url}/0", cwd=tmp_path)
    api.env.pop("DATABASE_URL", None)
    try:
        api.start()
        writer = {"Authorization": f"Bearer {api.jwt(user_id)}"}
        listed = httpx.get(f"{api.url}/api/v1/novels", headers=writer, timeout=5)
        assert (listed.status_code, listed.json()) == (200, [])
        ops = {"Authorization": f"Bearer {api.jwt('ops-admin', roles=('admin',))}"}
        notice = {
            "level": "info",
            "message": "hello",
            "target": {"audience": "users", "user_ids": [user_id]},
        }
        sent = httpx.post(f"{api.url}/api/v1/admin/notifications", json=notice, headers=ops)
        assert sent.status_code == 202, sent.text
        assert (tmp_path / "infinitescribe.db").exists()
    finally:
        api.close()


def test_a_starting_worker_writes_the_spill_to_the_journal_once_and_pushes_what_was_not_pushed(
    own_redis: RedisServer, tmp_path: Path, user_id: str
) -> None:
    database_url = f"sqlite:///{tmp_path / 'journal.db'}"
    upgrade(database_url)
    redis_url = f"{own_redis.url}/0"
    store = RedisEventStore(connect(redis_url))
    spill = RedisJournalSpill(store.client)
    pushed = [TaskCompleted(user_id=user_id, task_id=f"t{n}", duration_seconds=n) for n in (1, 2)]
    placed = store.append_many([(event, ()) for event in pushed])
    stranded = TaskCompleted(user_id=user_id, task_id="t3", duration_seconds=3)
    spill.keep([(event, ()) for event in pushed], placements_of([(e, ()) for e in pushed], placed))
    spill.keep([(stranded, ())])
    audit = AuditLog(make_sessions(make_engine(database_url)), Sealer([DEV_AUDIT_KEY]))
    audit.record([(pushed[0], ())])  # the first one's journal write did commit after all
    resources.configure(WorkerSettings(redis_url=redis_url, database_url=database_url))
    worker = WorkerProcess({"REDIS_URL": redis_url, "DATABASE_URL": database_url}, concurrency=1)
    try:
        worker.start()
        rows = until(
            lambda: journaled(database_url, user_id),
            lambda found: {status for _, status in found} == {"published"} and len(found) == 3,
        )
        expected = {str(e.event_id) for e in [*pushed, stranded]}
        assert sorted(event_id for event_id, _ in rows) == sorted(expected), worker.log_text
        assert {status for _, status in rows} == {"published"}
        assert spill.size() == 0
        ids = [e["event_id"] for e in stored_events(store, user_id)]
        assert sorted(ids) == sorted(expected)  # the stranded one pushed, nothing twice
        replayed = audit.replay(user_stream(user_id), "0-0", 10)
        assert [stream_id is not None for stream_id, _ in replayed] == [True, True, True]
    finally:
        worker.close()
        audit.dispose()
        store.close()
        resources.configure(None)
