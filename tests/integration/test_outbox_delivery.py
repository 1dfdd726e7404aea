"""Issue 6: important events reach their user through Redis flushes, crashes between commit
and push, and long bursts; on SQLite and a real PostgreSQL, real Redis, real uvicorn, real SSE.

Each test owns its redis-server (it is flushed) and its database.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest

import progress
from progress.audit_log import AuditLog
from progress.events import EventEnvelope, NovelCreated, TaskCompleted, TaskFailed, TaskUpdated
from progress.journal_sql import SqlJournal
from progress.outbox import OutboxWriter, dispatch_pending
from progress.pump import EventPump
from progress.redis_server import RedisServer
from progress.redis_store import RedisEventStore, connect
from progress.sealing import DEV_AUDIT_KEY, Sealer
from progress.settings import ProgressSettings
from progress.sql import make_engine, make_sessions
from progress.store import StoreSettings
from tests.servers import ApiServer
from tests.sse_client import SseClient, SseEvent
from tests.workers import WorkerProcess
from workers import contracts, resources
from workers.settings import WorkerSettings

pytestmark = pytest.mark.integration


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def audit(database_url: str) -> Iterator[AuditLog]:
    log = AuditLog(make_sessions(make_engine(database_url)), Sealer([DEV_AUDIT_KEY]))
    yield log
    log.dispose()


@pytest.fixture
def writer(own_redis: RedisServer, audit: AuditLog) -> Iterator[OutboxWriter]:
    journal = SqlJournal(audit)
    outbox = OutboxWriter(RedisEventStore(connect(f"{own_redis.url}/0")), journal)
    yield outbox
    outbox.close()


def start_api(redis: RedisServer, database_url: str, **env: str) -> ApiServer:
    return ApiServer(f"{redis.url}/0", DATABASE_URL=database_url, **env).start()


def open_stream(api: ApiServer, user: str, cursor: str | None = None) -> SseClient:
    url = f"{api.url}/api/v1/events/stream?sse_token={api.sse_token(api.jwt(user))}"
    client = SseClient(url, {"Last-Event-ID": cursor} if cursor else {})
    client.wait_for(lambda events: any(e.event == "connection.established" for e in events))
    return client


def task_ids(events: list[SseEvent]) -> list[str]:
    return [e.json["event_id"] for e in events if e.event.startswith(("task.", "content."))]


def mixed(user: str, start: int, count: int) -> list[EventEnvelope]:
    """Alternating important (completed) and unimportant (updated) events."""
    events: list[EventEnvelope] = []
    for n in range(start, start + count):
        if n % 2 == 0:
            events.append(TaskCompleted(user_id=user, task_id=f"t{n}", duration_seconds=n))
        else:
            events.append(TaskUpdated(user_id=user, task_id=f"t{n}", percent=50))
    return events


def ids(events: list[EventEnvelope]) -> list[str]:
    return [str(e.event_id) for e in events]


def important(events: list[EventEnvelope]) -> list[EventEnvelope]:
    return [e for e in events if e.important]


def test_after_a_redis_flush_a_resumed_client_gets_every_important_event_since_its_cursor(
    own_redis: RedisServer, database_url: str, writer: OutboxWriter, user_id: str
) -> None:
    api = start_api(own_redis, database_url)
    try:
        seen = open_stream(api, user_id)
        before = mixed(user_id, 0, 10)
        writer.append_many([(e, ()) for e in before])
        seen.wait_for(lambda events: len(task_ids(events)) == 10)
        cursor = [e for e in seen.events if e.event.startswith("task.")][3].id
        seen.close()
        while_away = mixed(user_id, 10, 6)
        writer.append_many([(e, ()) for e in while_away])
        connect(f"{own_redis.url}/0").flushall()
        after_flush = [
            TaskFailed(
                user_id=user_id,
                task_id="late",
                error_type="X",
                message="m",
                retryable=False,
                retry_suggestion="s",
            ),
            TaskUpdated(user_id=user_id, task_id="late", percent=1),
        ]
        writer.append_many([(e, ()) for e in after_flush])

        resumed = open_stream(api, user_id, cursor)
        expected = ids(important(before[4:] + while_away) + after_flush)
        resumed.wait_for(lambda events: len(task_ids(events)) >= len(expected))
        live = TaskCompleted(user_id=user_id, task_id="live", duration_seconds=1)
        writer.append(live)
        resumed.wait_for(lambda events: str(live.event_id) in task_ids(events))
        resumed.close()

        assert resumed.events[1].event == "stream.reset"
        assert task_ids(resumed.events) == [*expected, str(live.event_id)]

        auth = {"Authorization": f"Bearer {api.jwt(user_id)}"}
        page = httpx.get(
            f"{api.url}/api/v1/events/history", params={"since_id": cursor}, headers=auth
        ).json()
        assert page["reset"] is True
        assert [e["event_id"] for e in page["events"]] == [*expected, str(live.event_id)]
    finally:
        api.close()


def test_an_event_stored_again_after_a_flush_while_its_journal_row_is_unpushed_comes_once(
    own_redis: RedisServer, database_url: str, writer: OutboxWriter, audit: AuditLog, user_id: str
) -> None:
    # Redis lost its data while a push was unanswered: the journal still has the event as not
    # pushed (no stream id), and the retried push stored it in the new history. The catch-up
    # finds it in both; the writer must get it once.
    api = start_api(own_redis, database_url)
    journal = SqlJournal(audit)
    store = RedisEventStore(connect(f"{own_redis.url}/0"))
    try:
        seen = open_stream(api, user_id)
        writer.append_many([(e, ()) for e in mixed(user_id, 0, 4)])
        seen.wait_for(lambda events: len(task_ids(events)) == 4)
        cursor = seen.last_id
        seen.close()
        connect(f"{own_redis.url}/0").flushall()
        retried = TaskCompleted(user_id=user_id, task_id="retried", duration_seconds=1)
        journal.record([(retried, ())])
        store.append(retried)

        resumed = open_stream(api, user_id, cursor)
        resumed.wait_for(lambda events: str(retried.event_id) in task_ids(events))
        live = TaskCompleted(user_id=user_id, task_id="live", duration_seconds=1)
        writer.append(live)
        resumed.wait_for(lambda events: str(live.event_id) in task_ids(events))
        resumed.close()

        assert resumed.events[1].event == "stream.reset"
        assert task_ids(resumed.events) == [str(retried.event_id), str(live.event_id)]
        auth = {"Authorization": f"Bearer {api.jwt(user_id)}"}
        page = httpx.get(
            f"{api.url}/api/v1/events/history", params={"since_id": cursor}, headers=auth
        ).json()
        assert [e["event_id"] for e in page["events"]] == task_ids(resumed.events)
    finally:
        store.close()
        journal.close()
        api.close()


def test_without_an_archive_the_reset_carries_the_cursor_from_before_the_events_after_it(
    own_redis: RedisServer, user_id: str
) -> None:
    # No SQL archive: after a flush the catch-up sends stream.reset, then the new history. A
    # client cut off right after the reset must get that history again when it resumes.
    api = ApiServer(f"{own_redis.url}/0").start()
    store = RedisEventStore(connect(f"{own_redis.url}/0"))
    try:
        seen = open_stream(api, user_id)
        store.append_many([(e, ()) for e in mixed(user_id, 0, 2)])
        seen.wait_for(lambda events: len(task_ids(events)) == 2)
        cursor = seen.last_id
        seen.close()
        connect(f"{own_redis.url}/0").flushall()
        after_flush = mixed(user_id, 2, 3)
        store.append_many([(e, ()) for e in after_flush])

        resumed = open_stream(api, user_id, cursor)
        resumed.wait_for(lambda events: len(task_ids(events)) == 3)
        resumed.close()
        reset = next(e for e in resumed.events if e.event == "stream.reset")
        assert reset.id, "the reset moves the cursor to the new history"

        cut_off = open_stream(api, user_id, reset.id)
        cut_off.wait_for(lambda events: len(task_ids(events)) == 3)
        cut_off.close()
        assert task_ids(cut_off.events) == ids(after_flush)
    finally:
        store.close()
        api.close()


def test_a_catch_up_whose_last_archived_event_is_for_another_session_still_moves_the_cursor(
    own_redis: RedisServer, database_url: str, writer: OutboxWriter, user_id: str
) -> None:
    # After a flush the catch-up sends the archive; its last event is for another tab's session,
    # so it is not sent. The cursor must still reach the client, else each reconnect repeats
    # the reset and the archive.
    api = start_api(own_redis, database_url)

    def open_as_tab_one(cursor: str | None = None) -> SseClient:
        token = api.sse_token(api.jwt(user_id, session_id="tab-1"))
        url = f"{api.url}/api/v1/events/stream?sse_token={token}"
        client = SseClient(url, {"Last-Event-ID": cursor} if cursor else {})
        client.wait_for(lambda events: any(e.event == "connection.established" for e in events))
        return client

    try:
        seen = open_as_tab_one()
        writer.append_many([(e, ()) for e in mixed(user_id, 0, 2)])
        seen.wait_for(lambda events: len(task_ids(events)) == 2)
        cursor = seen.last_id
        seen.close()
        mine = TaskCompleted(user_id=user_id, task_id="mine", duration_seconds=1)
        theirs = TaskCompleted(
            user_id=user_id,
            session_id="tab-2",
            audience="session",
            task_id="theirs",
            duration_seconds=1,
        )
        writer.append_many([(mine, ()), (theirs, ())])
        connect(f"{own_redis.url}/0").flushall()

        resumed = open_as_tab_one(cursor)
        resumed.wait_for(lambda events: str(mine.event_id) in task_ids(events))
        live = TaskCompleted(user_id=user_id, task_id="live", duration_seconds=1)
        writer.append(live)
        resumed.wait_for(lambda events: str(live.event_id) in task_ids(events))
        resumed.close()
        assert [e.event for e in resumed.events][1] == "stream.reset"
        assert task_ids(resumed.events) == [str(mine.event_id), str(live.event_id)]
        archived_frame = next(e for e in resumed.events if e.json.get("task_id") == "mine")
        assert archived_frame.id, "the catch-up's last frame sent carries the cursor"

        again = open_as_tab_one(archived_frame.id)
        again.wait_for(lambda events: str(live.event_id) in task_ids(events))
        again.close()
        assert "stream.reset" not in [e.event for e in again.events]
        assert task_ids(again.events) == [str(live.event_id)]
    finally:
        api.close()


def test_a_cursor_older_than_what_redis_keeps_still_gets_every_important_event_since(
    own_redis: RedisServer, database_url: str, audit: AuditLog, user_id: str
) -> None:
    short = RedisEventStore(connect(f"{own_redis.url}/0"), StoreSettings(max_stream_length=10))
    writer = OutboxWriter(short, SqlJournal(audit))
    api = start_api(own_redis, database_url)
    try:
        seen = open_stream(api, user_id)
        first = mixed(user_id, 0, 2)
        writer.append_many([(e, ()) for e in first])
        seen.wait_for(lambda events: len(task_ids(events)) == 2)
        cursor = seen.last_id
        seen.close()
        away = mixed(user_id, 2, 400)  # Redis keeps only the newest part of these
        writer.append_many([(e, ()) for e in away])
        kept = {
            orjson.loads(e.data)["event_id"] for e in short.read_after(f"u:{user_id}", "0-0", 1000)
        }
        assert str(away[0].event_id) not in kept, "nothing was trimmed"

        resumed = open_stream(api, user_id, cursor)
        expected = [str(e.event_id) for e in away if e.important or str(e.event_id) in kept]
        resumed.wait_for(lambda events: len(task_ids(events)) >= len(expected))
        resumed.close()

        assert resumed.events[1].event == "stream.reset"
        assert task_ids(resumed.events) == expected
    finally:
        short.close()
        api.close()


def test_worker_killed_between_commit_and_push_delivers_the_event_once_after_restart(
    own_redis: RedisServer, database_url: str, audit: AuditLog, user_id: str
) -> None:
    redis_url = f"{own_redis.url}/0"
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "WORKER_BROKER_DB": "1",
        "WORKER_RESULT_DB": "2",
        "WORKER_LOCAL_TOKENS_PER_SECOND": "2000",
        "WORKER_TOKENS_PER_CHAPTER": "10",
    }
    resources.configure(
        WorkerSettings(redis_url=redis_url, database_url=database_url, broker_db=1, result_db=2)
    )
    progress.configure(ProgressSettings(redis_url=redis_url))
    api = start_api(own_redis, database_url, SSE_HEARTBEAT_SECONDS="0.5")
    doomed = WorkerProcess({**env, "PROGRESS_OUTBOX_CRASH_AFTER_COMMIT": "true"}, concurrency=1)
    try:
        stream = open_stream(api, user_id)
        doomed.start()
        contracts.start_novel(user_id, None, "Tide", "a premise", 1)
        deadline = time.monotonic() + 30
        while doomed._process is not None and doomed._process.poll() is None:
            assert time.monotonic() < deadline, doomed.log_text
            time.sleep(0.05)
        assert doomed._process is not None and doomed._process.returncode == -signal.SIGKILL
        doomed.stop()
        pending = audit.recent("pending", user_id)
        stranded = [str(r.event.event_id) for r in pending]
        assert stranded, "the crash left no committed, unpushed event"
        assert not set(stranded) & set(task_ids(stream.events))

        with WorkerProcess(env, concurrency=1):
            stream.wait_for(lambda events: set(stranded) <= set(task_ids(events)), timeout=20)
            # A second dispatcher pushing the same rows again changes nothing for the user.
            audit.mark_failed([r.event.event_id for r in pending], "pushed twice on purpose")
            store = RedisEventStore(connect(redis_url))
            assert dispatch_pending(audit, store, grace_seconds=0, max_attempts=10) >= 1
            store.close()
            beats = len(stream.of_type("heartbeat"))
            stream.wait_for(lambda _: len(stream.of_type("heartbeat")) >= beats + 2)
        delivered = task_ids(stream.events)
        assert all(delivered.count(event_id) == 1 for event_id in stranded)
        assert len(delivered) == len(set(delivered))
        stream.close()
    finally:
        doomed.stop()
        api.close()
        progress.configure(None)
        resources.configure(None)


def test_ten_thousand_important_events_are_stored_and_delivered_once(
    own_redis: RedisServer, database_url: str, audit: AuditLog, user_id: str
) -> None:
    api = start_api(own_redis, database_url, SSE_QUEUE_SIZE="20000")
    journal = SqlJournal(audit, (0.002, 500))
    redis_url = f"{own_redis.url}/0"
    pump = EventPump(
        lambda: OutboxWriter(RedisEventStore(connect(redis_url)), journal), lambda: None
    )
    try:
        stream = open_stream(api, user_id)
        events = [
            TaskCompleted(user_id=user_id, task_id=f"t{n}", duration_seconds=n)
            for n in range(10_000)
        ]
        for event in events:
            pump.submit(event)
        assert pump.flush(60)
        stream.wait_for(lambda got: len(task_ids(got)) >= 10_000, timeout=60)
        stream.close()
        journal.close()

        assert task_ids(stream.events) == ids(events)
        assert audit.count_pending() == 0
        assert len(audit.recent("published", user_id, limit=20_000)) == 10_000
    finally:
        pump.close()
        journal.close()
        api.close()


def test_audit_endpoints_are_for_admins_and_resend_failed_pushes(
    own_redis: RedisServer, database_url: str, audit: AuditLog, user_id: str
) -> None:
    failed = TaskCompleted(user_id=user_id, task_id="t", duration_seconds=1)
    audit.record([(failed, ())])
    audit.mark_failed([failed.event_id], "ConnectionError: Redis went away")
    api = start_api(own_redis, database_url)
    try:
        user_auth = {"Authorization": f"Bearer {api.jwt(user_id)}"}
        admin_jwt = httpx.post(
            f"{api.url}/api/v1/auth/dev-token",
            json={"user_id": "ops", "roles": ["admin"]},
            timeout=5,
        ).json()["access_token"]
        admin = {"Authorization": f"Bearer {admin_jwt}"}
        base = f"{api.url}/api/v1/admin/audit"

        assert httpx.get(base, headers=user_auth).status_code == 403
        assert httpx.post(f"{base}/resend-failed", headers=user_auth).status_code == 403
        listed = httpx.get(base, params={"status": "failed"}, headers=admin).json()["events"]
        assert [(e["event_id"], e["last_error"]) for e in listed] == [
            (str(failed.event_id), "ConnectionError: Redis went away")
        ]
        stream = open_stream(api, user_id)
        resent = httpx.post(f"{base}/resend-failed", headers=admin).json()
        stream.wait_for(lambda events: str(failed.event_id) in task_ids(events))
        stream.close()
        assert resent == {"resent": 1}
        assert httpx.post(f"{base}/999999/resend", headers=admin).status_code == 404
        assert audit.recent("failed") == []
    finally:
        api.close()


def test_sealed_fields_are_readable_through_the_admin_endpoint_after_a_key_rotation(
    own_redis: RedisServer, database_url: str, audit: AuditLog, user_id: str
) -> None:
    created = NovelCreated(user_id=user_id, novel_id="n1", title="Tide", premise="hidden plot")
    audit.record([(created, ())])
    api = start_api(own_redis, database_url, AUDIT_ENCRYPTION_KEYS=f"{NEW_KEY},{DEV_AUDIT_KEY}")
    try:
        admin_jwt = httpx.post(
            f"{api.url}/api/v1/auth/dev-token",
            json={"user_id": "ops", "roles": ["admin"]},
            timeout=5,
        ).json()["access_token"]
        body = httpx.get(
            f"{api.url}/api/v1/admin/audit",
            params={"user_id": user_id},
            headers={"Authorization": f"Bearer {admin_jwt}"},
        ).json()
        assert [e["event"]["premise"] for e in body["events"]] == ["hidden plot"]
    finally:
        api.close()


NEW_KEY = "x6QmQd1pl1ct2V3J4k2mZ9v9s8yq5l0m3r7n0e9b1wA="
