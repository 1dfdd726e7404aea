"""Issue 21 benchmark: what keeping a workflow's counts costs Redis, per task, for a group of
10,000 tasks, and how many ``workflow.progress`` events reach the owner per second.

    PYTHONPATH=. python bench/bench_workflow.py [--tasks 10000] [--rate 2000] [--record]

Drives the workers' own path (the reporter's ``EventPump`` sending batches through a
``WorkflowWriter`` to the Redis store) with the events a group of ``--tasks`` tasks produces:
each task sent (a ``TaskQueued`` marker, all at once as ``group.apply_async`` sends them), then
started, one update and completed, ``--rate`` tasks a second. First the counting alone: the group's
transitions through ``WorkflowCounter`` in batches of 1, 10 and 100 (a busy pump sends bigger
batches, a quiet one single events), with Redis' ``INFO commandstats`` (calls, µs) and
``used_cpu_*`` before and after, per task. Then the whole path twice on the same embedded
redis-server, without counting (``WorkflowWriter(store, None)``) and with it. A subscriber on
the owner's channel (what the API relays) counts the ``workflow.progress`` events and checks
the final one. Prints one JSON line; with
``--record`` appends it to docs/bench-results.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from progress.events import EventEnvelope, TaskCompleted, TaskStarted, TaskUpdated
from progress.keys import KeyLayout, user_stream
from progress.pump import EventPump
from progress.redis_server import RedisServer
from progress.redis_store import RedisEventStore, connect
from progress.store import StoreSettings
from progress.workflow import (
    QueuedTask,
    TaskQueued,
    Transition,
    WorkflowCounter,
    WorkflowWriter,
    absorb,
)

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "bench-results.jsonl"


def redis_cost(client: redis.Redis) -> dict[str, float]:
    """Redis' commands run, their µs, and its CPU seconds so far."""
    stats: dict[str, Any] = client.info("commandstats")
    cpu: dict[str, Any] = client.info("cpu")
    calls = sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")
    usec = sum(int(v["usec"]) for k, v in stats.items() if k != "cmdstat_info")
    scripts = int(stats.get("cmdstat_evalsha", {}).get("calls", 0))
    return {
        "calls": calls,
        "usec": usec,
        "evalsha": scripts,
        "cpu_s": float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
    }


class Listener:
    """Counts the ``workflow.progress`` events published on one user's channel."""

    def __init__(self, client: redis.Redis, channel: str) -> None:
        self.client = client  # held: a collected client closes its pool, and the subscription
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(channel)
        self.times: list[float] = []
        self.last: dict[str, Any] | None = None
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop:
            message = self.pubsub.get_message(timeout=0.1)
            if message is None:
                continue
            data = message["data"].split(b" ", 2)[2]
            if b'"workflow.progress"' in data:
                self.times.append(time.monotonic())
                self.last = json.loads(data)

    def close(self) -> None:
        self._stop = True
        self.thread.join(2)
        self.pubsub.close()
        self.client.close()


def cost(url: str, tasks: int, batch: int) -> dict[str, Any]:
    """Only the counting: a group's transitions (queued, started, completed per task; updates
    folded away as the writer does) through ``WorkflowCounter`` in batches of ``batch``
    transitions; Redis' commands and CPU per task."""
    layout = KeyLayout(f"bc{uuid.uuid4().hex[:6]}")
    counter = WorkflowCounter(lambda: connect(url), layout, 600, 1.0)
    admin = connect(url)
    key = (f"u{uuid.uuid4().hex[:8]}", "wf")
    ids = [uuid.uuid4().hex for _ in range(tasks)]
    transitions = [Transition("queued", i, 1.0, "bench.step") for i in ids]
    for task_id in ids:
        transitions += [Transition("started", task_id, 1.0, "bench.step")]
        transitions += [Transition("completed", task_id)]
    counter.apply({key: transitions[:1]})  # loads the script
    before = redis_cost(admin)
    started = time.perf_counter()
    for first in range(1, len(transitions), batch):
        counter.apply({key: transitions[first : first + batch]})
    seconds = time.perf_counter() - started
    after = redis_cost(admin)
    tally = counter.snapshot(*key)
    counter.close()
    admin.close()
    assert tally is not None and (tally.total, tally.done) == (tasks, tasks), tally
    return {
        "batch": batch,
        "script_calls_per_task": round((after["evalsha"] - before["evalsha"]) / tasks, 3),
        "commands_per_task": round((after["calls"] - before["calls"]) / tasks, 2),
        "redis_usec_per_task": round((after["usec"] - before["usec"]) / tasks, 2),
        "redis_cpu_usec_per_task": round(1e6 * (after["cpu_s"] - before["cpu_s"]) / tasks, 2),
        "client_seconds": round(seconds, 2),
    }


def run(url: str, tasks: int, rate: float, counting: bool) -> dict[str, Any]:
    """One group of ``tasks`` through the pump; the Redis cost and the events received."""
    prefix = f"bw{uuid.uuid4().hex[:6]}"
    settings = StoreSettings(key_prefix=prefix)
    layout = KeyLayout(prefix)
    user, workflow = f"u{uuid.uuid4().hex[:8]}", "wf"
    store = RedisEventStore(connect(url), settings)
    counter = WorkflowCounter(lambda: connect(url), layout, 600, 1.0) if counting else None
    writer = WorkflowWriter(store, counter)
    pump = EventPump(lambda: writer, lambda: None, absorb=absorb)
    admin = connect(url)
    listener = Listener(connect(url), layout.channel(user_stream(user)))
    envelope = {"user_id": user, "workflow_id": workflow}
    ids = [uuid.uuid4().hex for _ in range(tasks)]
    before = redis_cost(admin)
    started = time.monotonic()
    for task_id in ids:
        queued = QueuedTask(task_id=task_id, task_name="bench.step")
        pump.submit(TaskQueued(**envelope, tasks=[queued]))
    for index, task_id in enumerate(ids):
        due = started + index / rate
        if (wait := due - time.monotonic()) > 0:
            time.sleep(wait)
        events: list[EventEnvelope] = [
            TaskStarted(**envelope, task_id=task_id, task_name="bench.step"),
            TaskUpdated(**envelope, task_id=task_id, percent=50),
            TaskCompleted(**envelope, task_id=task_id, duration_seconds=0.001),
        ]
        for event in events:
            pump.submit(event)
    pump.flush(60)
    sent = time.monotonic() - started
    deadline = time.monotonic() + 5
    while counting and time.monotonic() < deadline:
        if listener.last is not None and listener.last["final"]:
            break
        time.sleep(0.05)
    pump.close(5)
    after = redis_cost(admin)
    listener.close()
    received = listener.times
    span = received[-1] - received[0] if len(received) > 1 else 0.0
    result = {
        "counting": counting,
        "seconds": round(sent, 2),
        "redis_calls": after["calls"] - before["calls"],
        "redis_script_calls": after["evalsha"] - before["evalsha"],
        "redis_usec": after["usec"] - before["usec"],
        "redis_cpu_s": round(after["cpu_s"] - before["cpu_s"], 3),
        "workflow_events": len(received),
        "workflow_events_per_s": round(len(received) / span, 2) if span else None,
        "final": listener.last,
    }
    store.close()
    admin.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=2000, help="tasks started per second")
    parser.add_argument("--record", action="store_true", help="append to bench-results.jsonl")
    args = parser.parse_args()
    with RedisServer() as server:
        url = f"{server.url}/0"
        costs = [cost(url, args.tasks, batch) for batch in (1, 10, 100)]
        plain = run(url, args.tasks, args.rate, counting=False)
        counted = run(url, args.tasks, args.rate, counting=True)
    final = counted.pop("final") or {}
    plain.pop("final")
    code = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    line = {
        "bench": "workflow",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "code": code,
        "command": f"python bench/bench_workflow.py --tasks {args.tasks} --rate {args.rate:g}",
        "tasks": args.tasks,
        "rate": args.rate,
        "without_counting": plain,
        "with_counting": counted,
        "counts_cost": costs,
        "final": {
            k: final.get(k) for k in ("state", "total", "done", "failed", "percent", "final")
        },
    }
    print(json.dumps(line))
    if args.record:
        with RESULTS.open("a") as out:
            out.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
