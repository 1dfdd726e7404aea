"""Issue 2 benchmark: cost of a throttled update, and events one process stores per second.

    python bench/bench_progress.py [--events 50000] [--redis-url URL]

Starts an embedded redis-server on loopback unless --redis-url is given. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from contextlib import ExitStack

import progress
from progress.events import TaskUpdated
from progress.identity import Identity
from progress.redis_server import RedisServer
from progress.redis_store import RedisEventStore, connect
from progress.reporter import TaskRun, current_run
from progress.runtime import get_reporter
from progress.settings import ProgressSettings


def throttled_update_cost(calls: int) -> float:
    """Mean seconds per progress.update() call that the throttle holds back."""
    run = TaskRun("bench-task", "bench", Identity("bench-user"))
    token = current_run.set(run)
    reporter = get_reporter()
    reporter.start(run)
    try:
        progress.update(1.0)  # leading edge: sent; everything after is held
        started = time.perf_counter()
        for step in range(calls):
            progress.update(50.0, "held", stage="drafting", step=step)
        elapsed = time.perf_counter() - started
    finally:
        reporter.completed(run, None)
        reporter.flush(10)
        current_run.reset(token)
    return elapsed / calls


def reporter_throughput(events: int, users: int) -> float:
    """Events per second stored through the reporter's background sender."""
    reporter = get_reporter()
    batch = [
        TaskUpdated(user_id=f"bench-{i % users}", task_id=f"t{i % users}", percent=i % 100)
        for i in range(events)
    ]
    started = time.perf_counter()
    for event in batch:
        reporter.submit(event)
    if not reporter.flush(120):
        raise SystemExit("sender did not drain in 120 s")
    return events / (time.perf_counter() - started)


def direct_single_throughput(store: RedisEventStore, events: int) -> float:
    """Events per second stored with one round trip each (the floor without batching)."""
    batch = [TaskUpdated(user_id="bench-single", task_id="t", percent=1) for _ in range(events)]
    started = time.perf_counter()
    for event in batch:
        store.append(event)
    return events / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--update-calls", type=int, default=1_000_000)
    parser.add_argument("--redis-url")
    options = parser.parse_args()
    with ExitStack() as stack:
        url = options.redis_url
        if url is None:
            url = f"{stack.enter_context(RedisServer()).url}/0"
        progress.configure(ProgressSettings(redis_url=url, max_queued_events=options.events + 10))
        store = RedisEventStore(connect(url))
        result = {
            "bench": "progress",
            "date": time.strftime("%Y-%m-%d"),
            "cores": os.cpu_count(),
            "throttled_update_us": round(throttled_update_cost(options.update_calls) * 1e6, 3),
            "stored_events_per_s_batched": round(
                reporter_throughput(options.events, options.users)
            ),
            "stored_events_per_s_one_round_trip_each": round(
                direct_single_throughput(store, min(options.events, 5_000))
            ),
            "events": options.events,
        }
        progress.shutdown()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
