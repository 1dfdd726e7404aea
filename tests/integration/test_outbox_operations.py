"""Issue 6: operators' tools on a real database and Redis: the CLI lists and resends failed
pushes and rotates keys; the beat task deletes rows past the retention."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta

import orjson
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import update

import progress
from progress.audit_log import AuditLog
from progress.events import NovelCreated, TaskCompleted
from progress.journal_tables import EventAudit
from progress.journaling import Journaling
from progress.keys import user_stream
from progress.redis_server import free_port
from progress.redis_store import RedisEventStore, connect
from progress.sealing import DEV_AUDIT_KEY, Sealer
from progress.settings import JournalSettings, ProgressSettings
from progress.sql import make_engine, make_sessions, utcnow_naive
from workers import resources
from workers.notify import save_chapter_and_announce
from workers.settings import WorkerSettings

pytestmark = pytest.mark.integration


@pytest.fixture
def audit(database_url: str) -> Iterator[AuditLog]:
    log = AuditLog(make_sessions(make_engine(database_url)), Sealer([DEV_AUDIT_KEY]))
    yield log
    log.dispose()


def cli(database_url: str, redis_url: str, *args: str, keys: str = "") -> dict:
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url}
    if keys:
        env["AUDIT_ENCRYPTION_KEYS"] = keys
    done = subprocess.run(
        [sys.executable, "-m", "workers.outbox_cli", *args],
        env=env,
        capture_output=True,
        timeout=60,
        check=True,
    )
    return orjson.loads(done.stdout)


def test_cli_lists_failed_pushes_with_their_reason_and_resends_them(
    audit: AuditLog, database_url: str, redis_url: str, user_id: str
) -> None:
    events = [TaskCompleted(user_id=user_id, task_id=f"t{n}", duration_seconds=n) for n in (1, 2)]
    audit.record([(e, ()) for e in events])
    audit.mark_failed([e.event_id for e in events], "TimeoutError: Redis did not answer")

    listed = cli(database_url, redis_url, "list-failed")["failed"]
    assert sorted(row["event_id"] for row in listed) == sorted(str(e.event_id) for e in events)
    assert {row["last_error"] for row in listed} == {"TimeoutError: Redis did not answer"}

    first = min(row["id"] for row in listed)
    assert cli(database_url, redis_url, "resend", str(first)) == {"resent": 1}
    assert cli(database_url, redis_url, "resend-all") == {"resent": 1}
    assert cli(database_url, redis_url, "list-failed") == {"failed": []}
    store = RedisEventStore(connect(redis_url))
    pushed = [
        orjson.loads(e.data)["event_id"] for e in store.read_after(user_stream(user_id), "0-0", 10)
    ]
    store.client.close()
    assert pushed == [str(e.event_id) for e in events]


def test_cli_rotates_keys_so_the_old_key_can_be_dropped(
    audit: AuditLog, database_url: str, redis_url: str, user_id: str
) -> None:
    created = NovelCreated(user_id=user_id, novel_id="n1", title="Tide", premise="twist")
    audit.record([(created, ())])
    new_key = Fernet.generate_key().decode()

    rotated = cli(database_url, redis_url, "rotate-keys", keys=f"{new_key},{DEV_AUDIT_KEY}")

    assert rotated["rotated"] >= 1
    only_new = AuditLog(make_sessions(make_engine(database_url)), Sealer([new_key]))
    assert [r.event.model_dump()["premise"] for r in only_new.recent(user_id=user_id)] == ["twist"]
    only_new.dispose()


def test_retention_job_deletes_rows_older_than_the_configured_window(
    audit: AuditLog, database_url: str, user_id: str
) -> None:
    old, recent = (TaskCompleted(user_id=user_id, task_id=t, duration_seconds=1) for t in "ab")
    audit.record([(old, ()), (recent, ())])
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(
            update(EventAudit)
            .where(EventAudit.event_id == str(old.event_id))
            .values(created_at=utcnow_naive() - timedelta(days=3, minutes=1))
        )
    engine.dispose()
    settings = JournalSettings(
        database_url=database_url,
        audit_retention_days=3,
        audit_allow_dev_key=True,
    )
    journaling = Journaling(settings)
    try:
        assert journaling.retain() == {"deleted": 1}
    finally:
        journaling.close()
    assert [r.event.event_id for r in audit.recent(user_id=user_id)] == [recent.event_id]


def test_a_chapter_and_its_update_event_commit_together_even_if_the_push_fails(
    audit: AuditLog, database_url: str, user_id: str
) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    resources.configure(WorkerSettings(redis_url=dead_redis, database_url=database_url))
    progress.configure(ProgressSettings(redis_url=dead_redis))
    try:
        novel = resources.novels().create(user_id, "Tide", "premise", 1, [f"{user_id}-m"])
        resources.novels().accept(novel.id, f"{user_id}-m")  # a reader: a recipient
        # Redis is down: the announcement waits in the event sender, the task does not fail.
        save_chapter_and_announce(novel.id, 1, "text", "a summary")
        assert resources.novels().chapter(novel.id, 1).summary == "a summary"
    finally:
        progress.configure(None)
        resources.configure(None)
    [row] = audit.recent(user_id=user_id)
    assert row.status == "pending" and row.recipients == [f"{user_id}-m"]
    assert row.event.model_dump()["chapters"][0]["summary"] == "a summary"
