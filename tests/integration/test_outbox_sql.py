"""Issue 6: the outbox and audit log on SQLite and a real PostgreSQL, pushing to real Redis."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta

import orjson
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text, update

from progress.audit_log import AuditLog
from progress.errors import StoreUnavailable
from progress.events import (
    ChapterChange,
    ChapterUpdated,
    EventEnvelope,
    NovelCreated,
    TaskCompleted,
    TaskUpdated,
)
from progress.group_commit import GroupCommitter
from progress.journal_sql import SqlJournal
from progress.journal_tables import EventAudit
from progress.keys import user_stream
from progress.outbox import OutboxWriter, dispatch_pending, resend
from progress.redis_store import RedisEventStore, connect
from progress.sealing import Sealer
from progress.sql import make_engine, make_sessions, utcnow_naive

pytestmark = pytest.mark.integration

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()


@pytest.fixture
def audit(database_url: str) -> Iterator[AuditLog]:
    log = AuditLog(make_sessions(make_engine(database_url)), Sealer([OLD_KEY]))
    yield log
    log.dispose()


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisEventStore]:
    client = connect(redis_url)
    yield RedisEventStore(client)
    client.close()


class BrokenStore:
    """A writer whose Redis is gone."""

    def append_many(self, *_: object) -> list[object]:
        raise StoreUnavailable("Redis unavailable: connection refused")

    def close(self) -> None:
        pass


def stream_events(store: RedisEventStore, user: str) -> list[dict]:
    return [orjson.loads(e.data) for e in store.read_after(user_stream(user), "0-0", 10_000)]


def completed(user: str, n: int = 0) -> TaskCompleted:
    return TaskCompleted(user_id=user, task_id=f"t{n}", duration_seconds=n)


def test_important_events_are_committed_then_pushed_and_marked_published(
    audit: AuditLog, store: RedisEventStore, user_id: str
) -> None:
    member = f"{user_id}-m"
    writer = OutboxWriter(store, SqlJournal(audit))
    created = NovelCreated(user_id=user_id, novel_id="n1", title="Tide", premise="p")
    update_ = TaskUpdated(user_id=user_id, task_id="t", percent=3)

    writer.append_many([(created, [member]), (update_, ())])

    rows = audit.recent(user_id=user_id)
    assert [(r.event.event_id, r.status, r.attempts) for r in rows] == [
        (created.event_id, "published", 1)
    ]
    assert rows[0].recipients == [member]
    assert [e["type"] for e in stream_events(store, member)] == ["content.novel-created"]
    [pushed] = store.read_after(user_stream(member), "0-0", 1)
    assert audit.replay(user_stream(member), "0-0", 10) == [(pushed.id, pushed.data)]


def test_a_failed_push_is_recorded_with_its_reason_and_resent_later(
    audit: AuditLog, store: RedisEventStore, user_id: str
) -> None:
    event = completed(user_id)
    with pytest.raises(StoreUnavailable):
        OutboxWriter(BrokenStore(), SqlJournal(audit)).append(event)

    [row] = audit.recent(status="failed", user_id=user_id)
    assert row.attempts == 1 and "connection refused" in (row.last_error or "")
    assert stream_events(store, user_id) == []

    assert resend(audit, store, [row.id]) == 1

    assert [e["event_id"] for e in stream_events(store, user_id)] == [str(event.event_id)]
    assert audit.get([row.id])[0].status == "published"


def test_dispatcher_pushes_rows_left_pending_exactly_once(
    audit: AuditLog, store: RedisEventStore, user_id: str
) -> None:
    events = [completed(user_id, n) for n in range(3)]
    audit.record([(e, ()) for e in events])  # committed, then the process "died"
    store.append(events[0])  # ...after pushing the first one, before marking it

    pushed = dispatch_pending(audit, store, grace_seconds=0, max_attempts=5)
    again = dispatch_pending(audit, store, grace_seconds=0, max_attempts=5)

    assert (pushed, again) == (3, 0)
    ids = [e["event_id"] for e in stream_events(store, user_id)]
    assert ids == [str(e.event_id) for e in events]
    assert {r.status for r in audit.recent(user_id=user_id)} == {"published"}
    assert audit.count_pending() == 0


def test_replay_returns_important_events_after_a_stream_id_in_order(
    audit: AuditLog, store: RedisEventStore, user_id: str
) -> None:
    writer = OutboxWriter(store, SqlJournal(audit))
    events: list[EventEnvelope] = []
    for n in range(6):
        events += [completed(user_id, n), TaskUpdated(user_id=user_id, task_id="t", percent=n)]
    stored = writer.append_many([(e, ()) for e in events])
    unpushed = completed(user_id, 99)
    audit.record([(unpushed, ())])

    replayed = [orjson.loads(d) for _, d in audit.replay(user_stream(user_id), stored[3].id, 100)]

    expected = [e for e in events[4:] if e.important] + [unpushed]
    assert [r["event_id"] for r in replayed] == [str(e.event_id) for e in expected]


def test_group_commit_stores_every_event_once(audit: AuditLog, user_id: str) -> None:
    commits = 0

    def record(batch: list) -> None:
        nonlocal commits
        commits += 1
        audit.record(batch)

    committer: GroupCommitter = GroupCommitter(record, max_wait=0.005)
    events = [completed(user_id, n) for n in range(40)]

    threads = [
        threading.Thread(target=committer.submit, args=([(events[i], ())],)) for i in range(40)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    committer.submit([(events[0], ())])  # recorded twice: still one row
    committer.close()

    rows = audit.recent(user_id=user_id, limit=100)
    assert sorted(str(r.event.event_id) for r in rows) == sorted(str(e.event_id) for e in events)
    assert commits < 40


def test_retention_deletes_exactly_the_rows_past_the_window(
    audit: AuditLog, database_url: str, user_id: str
) -> None:
    now = utcnow_naive()
    ages = {
        "8d": timedelta(days=8),
        "7d+1s": timedelta(days=7, seconds=1),
        "7d-1m": timedelta(days=7) - timedelta(minutes=1),
        "1h": timedelta(hours=1),
    }
    events = {name: completed(user_id, n) for n, name in enumerate(ages)}
    audit.record([(e, ()) for e in events.values()])
    engine = make_engine(database_url)
    with engine.begin() as connection:
        for name, age in ages.items():
            connection.execute(
                update(EventAudit)
                .where(EventAudit.event_id == str(events[name].event_id))
                .values(created_at=now - age)
            )
    engine.dispose()

    deleted = audit.delete_before(now - timedelta(days=7), batch_size=1)

    kept = {str(r.event.event_id) for r in audit.recent(user_id=user_id)}
    assert deleted == 2
    assert kept == {str(events["7d-1m"].event_id), str(events["1h"].event_id)}


def test_sensitive_fields_are_unreadable_in_sql_and_readable_after_key_rotation(
    audit: AuditLog, database_url: str, user_id: str
) -> None:
    event = ChapterUpdated(
        user_id=user_id,
        novel_id="n1",
        chapters=[ChapterChange(chapter_id="c1", number=1, summary="the butler did it")],
    )
    created = NovelCreated(user_id=user_id, novel_id="n1", title="Tide", premise="secret premise")
    audit.record([(event, ()), (created, ())])
    engine = make_engine(database_url)
    with engine.connect() as connection:
        raw = connection.execute(
            text("SELECT * FROM sse_event_audit WHERE user_id = :u"), {"u": user_id}
        ).all()
    engine.dispose()
    dumped = repr(raw)
    assert "butler" not in dumped and "secret premise" not in dumped
    assert "Tide" in dumped  # only the marked fields are sealed

    rotated = AuditLog(make_sessions(make_engine(database_url)), Sealer([NEW_KEY, OLD_KEY]))
    assert {r.event.event_id: r.event for r in rotated.recent(user_id=user_id)} == {
        event.event_id: event,
        created.event_id: created,
    }
    assert rotated.rotate_keys(batch_size=1) >= 2
    new_only = AuditLog(make_sessions(make_engine(database_url)), Sealer([NEW_KEY]))
    assert sorted(str(r.event) for r in new_only.recent(user_id=user_id)) == sorted(
        [str(event), str(created)]
    )
    rotated.dispose()
    new_only.dispose()


def test_pending_count_counts_rows_not_yet_pushed(audit: AuditLog, user_id: str) -> None:
    before = audit.count_pending()
    audit.record([(completed(user_id, n), ()) for n in range(3)])
    audit.mark_published([uuid.uuid4()], [])
    assert audit.count_pending() == before + 3
