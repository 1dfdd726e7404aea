"""Issue 6 benchmark: important events per second through the SQL outbox, with and without
group commit.

    PYTHONPATH=. python bench/bench_outbox.py [--events 10000] [--producers 8] [--postgres]

Mode "producers": each producer thread publishes important events one at a time (as tasks
do): the outbox commits each to SQL, pushes it to Redis, then marks it published; run once
without and once with group commit. Mode "background sender": one process submits events to
its sender thread (the reporter's path), which journals and pushes them in batches.
Starts an embedded redis-server and uses a fresh SQLite file (or, with --postgres, a throwaway
PostgreSQL cluster started like the tests' one: fsync off). Checks that every event is stored
once in SQL and once in Redis. Prints one JSON line per run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack

from sqlalchemy import func, select

from progress.audit_log import AuditLog
from progress.events import TaskCompleted
from progress.journal_sql import SqlJournal
from progress.journal_tables import EventAudit
from progress.keys import KeyLayout, user_stream
from progress.outbox import OutboxWriter
from progress.pump import EventPump
from progress.redis_server import RedisServer
from progress.redis_store import RedisEventStore, connect
from progress.sealing import DEV_AUDIT_KEY, Sealer
from progress.sql import make_engine, make_sessions
from workers.migrate import upgrade

BATCHING = (0.002, 500)  # the defaults: wait at most 2 ms, at most 500 events per commit


def database(postgres: bool, stack: ExitStack) -> str:
    """URL of a fresh, migrated database."""
    if postgres:
        from tests.postgres_server import PostgresServer

        server = stack.enter_context(PostgresServer())
        url = server.create_database(f"bench_{uuid.uuid4().hex[:8]}")
    else:
        url = f"sqlite:///{stack.enter_context(tempfile.TemporaryDirectory())}/bench.db"
    upgrade(url)
    return url


def audit_log(url: str) -> AuditLog:
    return AuditLog(make_sessions(make_engine(url)), Sealer([DEV_AUDIT_KEY]))


def check(url: str, redis_url: str, users: list[str], total: int) -> None:
    """Exit unless every event is once in Redis and once, published, in SQL."""
    client = connect(redis_url)
    in_redis = sum(client.xlen(KeyLayout().events(user_stream(u))) for u in users)
    client.close()
    engine = make_engine(url)
    with make_sessions(engine)() as session:
        published = EventAudit.user_id.in_(users), EventAudit.status == "published"
        rows = session.scalar(select(func.count()).where(*published))
    engine.dispose()
    if in_redis != total or rows != total:
        raise SystemExit(f"lost or duplicated events: {in_redis} in Redis, {rows} rows, {total}")


def run_producers(url: str, redis_url: str, events: int, producers: int, batching: bool) -> dict:
    """Publish ``events`` important events from ``producers`` threads, one per call."""
    audit = audit_log(url)
    journal = SqlJournal(audit, BATCHING if batching else None)
    users = [f"bench-{uuid.uuid4().hex[:8]}" for _ in range(producers)]
    share = events // producers

    def produce(user: str) -> None:
        writer = OutboxWriter(RedisEventStore(connect(redis_url)), journal)
        for n in range(share):
            writer.append(TaskCompleted(user_id=user, task_id=f"t{n}", duration_seconds=1))
        writer.close()

    threads = [threading.Thread(target=produce, args=(user,)) for user in users]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    journal.close()
    check(url, redis_url, users, share * producers)
    audit.dispose()
    return {
        "mode": f"{producers} producers, one event per call",
        "group_commit": batching,
        "events": share * producers,
        "seconds": round(elapsed, 3),
        "events_per_second": round(share * producers / elapsed),
    }


def run_sender(url: str, redis_url: str, events: int) -> dict:
    """Submit ``events`` important events to one background sender (batches of up to 500)."""
    audit = audit_log(url)
    journal = SqlJournal(audit, BATCHING)
    user = f"bench-{uuid.uuid4().hex[:8]}"
    pump = EventPump(
        lambda: OutboxWriter(RedisEventStore(connect(redis_url)), journal), lambda: None
    )
    batch = [
        TaskCompleted(user_id=user, task_id=f"t{n}", duration_seconds=1) for n in range(events)
    ]
    started = time.perf_counter()
    for event in batch:
        pump.submit(event)
    if not pump.flush(300):
        raise SystemExit("sender did not drain in 300 s")
    elapsed = time.perf_counter() - started
    pump.close()
    journal.close()
    check(url, redis_url, [user], events)
    audit.dispose()
    return {
        "mode": "background sender",
        "group_commit": True,
        "events": events,
        "seconds": round(elapsed, 3),
        "events_per_second": round(events / elapsed),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--producers", type=int, default=8)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    context = {"database": "postgresql" if args.postgres else "sqlite", "cores": os.cpu_count()}
    with ExitStack() as stack:
        redis_url = f"{stack.enter_context(RedisServer()).url}/0"
        url = database(args.postgres, stack)
        for batching in (False, True):
            figures = run_producers(url, redis_url, args.events, args.producers, batching)
            print(json.dumps(figures | context), flush=True)
        print(json.dumps(run_sender(url, redis_url, args.events) | context), flush=True)


if __name__ == "__main__":
    main()
