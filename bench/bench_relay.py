"""The relay's CPU per recipient, in-process: what ``Connection.offer`` costs a parked stream.

    python bench/bench_relay.py [--streams 2000 --events 200 --repeat 5]

Builds ``--streams`` connections parked on a socket that takes every write (a stand-in for the
stream response's direct writer that discards the bytes) and offers each of ``--events`` live
events to every one of them, as the hub does for a broadcast: the decision, the cursor, the
frame and the write, without Redis, the network or an event loop. Three kinds of event: a
broadcast progress update (every stream), a notification on one user's own stream, and a
progress update to streams that asked for ``progress_interval_ms`` (the pacer's path). Prints
one JSON line: the best of ``--repeat`` runs in CPU microseconds per recipient for each
(process time, which other work on the machine disturbs less than the wall clock).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, cast

import orjson

from api.auth.authz import NovelMembershipAuthorizer
from api.auth.tokens import Principal
from api.event_meta import event_meta
from api.stream.connection import Connection, StreamOptions
from api.stream.delivery import Delivery
from progress.keys import BROADCAST, user_stream
from progress.redis_store import AsyncRedisEventStore

EPOCH = "e1"
OPTIONS = StreamOptions(
    heartbeat_seconds=30.0,
    retry_ms=1000,
    queue_size=256,
    max_replay=1000,
    expiry_notice_seconds=60.0,
    instance_id="bench",
)


class _Sink:
    """Takes every write at once, like a socket with room."""

    writable = True

    def write(self, data: bytes) -> None:
        """Discard ``data``."""


class _Readers:
    """Novel readers held in memory: nobody reads any novel here."""

    readers: frozenset[tuple[str, str]] = frozenset()

    async def may_read(self, user_id: str, novel_id: str) -> bool:
        return (user_id, novel_id) in self.readers


def _parked(streams: int, interval: float) -> list[Connection]:
    authorizer = NovelMembershipAuthorizer(_Readers())
    store = cast(AsyncRedisEventStore, None)  # never read: no catch-up runs here
    connections = []
    for n in range(streams):
        principal = Principal(f"u{n}", None, time.time() + 3600)
        connection = Connection(
            f"c{n}", principal, None, store, authorizer, OPTIONS, progress_interval=interval
        )
        # What the stream's task sets once its response started and it waits for work.
        connection._writer = cast(Any, _Sink())
        connection._parked = True
        connections.append(connection)
    return connections


def _event(stream: str, n: int, kind: str, user: str | None) -> Delivery:
    body: dict[str, Any] = {"event_id": f"ev{n}", "type": kind, "user_id": user}
    if kind == "task.progress-updated":
        body.update(task_id="t1", progress=n % 100)
    else:
        body.update(level="info", title="hello")
    if stream == BROADCAST:
        body["audience"] = "broadcast"
    data = orjson.dumps(body)
    return Delivery(stream, EPOCH, f"{1_700_000_000_000 + n}-0", event_meta(data), data)


def _broadcast(streams: int, events: int, interval: float) -> float:
    connections = _parked(streams, interval)
    deliveries = [_event(BROADCAST, n, "task.progress-updated", None) for n in range(1, events + 1)]
    started = time.process_time()
    for delivery in deliveries:
        for connection in connections:
            connection.offer(delivery)
    return (time.process_time() - started) / (streams * events) * 1e6


def _own(streams: int, events: int) -> float:
    connections = _parked(streams, 0.0)
    deliveries = [
        [_event(user_stream(c.principal.user_id), n, "system.notification", c.principal.user_id)]
        for n, c in enumerate(connections * events, start=1)
    ]
    started = time.process_time()
    for connection, (delivery,) in zip(connections * events, deliveries, strict=True):
        connection.offer(delivery)
    return (time.process_time() - started) / (streams * events) * 1e6


def main() -> None:
    """Run each kind ``--repeat`` times and print the best figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    runs: dict[str, list[float]] = {"broadcast_us": [], "own_us": [], "paced_us": []}
    for _ in range(args.repeat):
        runs["broadcast_us"].append(_broadcast(args.streams, args.events, 0.0))
        runs["own_us"].append(_own(args.streams, args.events // 10 or 1))
        runs["paced_us"].append(_broadcast(args.streams, args.events // 10 or 1, 1.0))
    result = {name: round(min(values), 2) for name, values in runs.items()}
    print(json.dumps({"streams": args.streams, "events": args.events, **result}))


if __name__ == "__main__":
    main()
