"""Issue 8: the CPU the hub's pub/sub reader spends per message, redis-py's PubSub vs our link.

    python bench/bench_pubsub_read.py [--messages 100000 --rate 10000 --size 300]

Starts an embedded redis-server. A publisher process publishes ``--messages`` messages of
``--size`` bytes on one channel at ``--rate`` per second (one pipeline every 5 ms). This
process reads them on uvloop, first with redis.asyncio's ``PubSub.get_message`` in the loop the
hub used before (bounded wait, one await chain per message), then with
``api.hub.pubsub_link.PubSubLink`` (every reply of a socket read in one list). The reader does
nothing with a message but count it, so the figure is the read path alone. Prints one JSON
line: the reader's CPU microseconds per message (process CPU time, which other processes on
the machine disturb far less than latency) and the share of a core it used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection as Pipe
from typing import Any

import redis
import redis.asyncio
import uvloop

from api.hub.pubsub_link import PubSubLink, RedisAddress, Replies
from progress.redis_server import RedisServer

CHANNEL = "bench:pubsub-read"
TICK_SECONDS = 0.005


def _publish(url: str, messages: int, rate: float, size: int, go: Pipe) -> None:
    client = redis.Redis.from_url(url)
    payload = b"x" * size
    per_tick = max(1, round(rate * TICK_SECONDS))
    go.recv()
    started = time.monotonic()
    sent = 0
    while sent < messages:
        with client.pipeline(transaction=False) as pipe:
            for _ in range(min(per_tick, messages - sent)):
                pipe.publish(CHANNEL, payload)
            pipe.execute()
        sent += per_tick
        time.sleep(max(0.0, started + sent / rate - time.monotonic()))
    client.close()


async def _read_with_redis_py(url: str, messages: int, start: Callable[[], None]) -> None:
    client = redis.asyncio.Redis.from_url(url, socket_timeout=None, socket_read_size=1 << 20)
    pubsub = client.pubsub(ignore_subscribe_messages=False)
    await pubsub.subscribe(CHANNEL)
    received = 0
    while received < messages:
        message = await pubsub.get_message(timeout=10.0)
        if message is None:
            raise RuntimeError("the publisher stopped")
        if message["type"] == "subscribe":
            start()
        elif message["type"] == "message":
            received += 1
    await pubsub.aclose()
    await client.aclose()


async def _read_with_link(url: str, messages: int, start: Callable[[], None]) -> None:
    done = asyncio.Event()
    received = 0

    def on_replies(replies: Replies) -> None:
        nonlocal received
        for kind, _channel, _payload in replies:
            if kind == b"message":
                received += 1
            elif kind == b"subscribe":
                start()
        if received >= messages:
            done.set()

    link = await PubSubLink.open(RedisAddress.from_url(url), on_replies)
    link.subscribe(CHANNEL)
    await asyncio.wait_for(done.wait(), messages / 1000 + 30)
    link.close()


Reader = Callable[[str, int, Callable[[], None]], Awaitable[None]]


def _measure(reader: Reader, url: str, options: argparse.Namespace) -> dict[str, Any]:
    ours, theirs = multiprocessing.get_context("fork").Pipe()
    publisher = multiprocessing.get_context("fork").Process(
        target=_publish, args=(url, options.messages, options.rate, options.size, theirs)
    )
    publisher.start()
    marks: dict[str, float] = {}

    def start() -> None:
        marks["cpu"], marks["wall"] = time.process_time(), time.monotonic()
        ours.send("go")

    uvloop.run(reader(url, options.messages, start))
    cpu, wall = time.process_time() - marks["cpu"], time.monotonic() - marks["wall"]
    publisher.join(10)
    return {
        "cpu_us_per_message": round(cpu / options.messages * 1e6, 2),
        "reader_cpu_percent": round(100 * cpu / wall, 1),
        "seconds": round(wall, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=10_000, help="messages/s")
    parser.add_argument("--size", type=int, default=300, help="payload bytes")
    options = parser.parse_args()
    with RedisServer() as server:
        url = f"{server.url}/0"
        results = {
            "redis_py_pubsub": _measure(_read_with_redis_py, url, options),
            "pubsub_link": _measure(_read_with_link, url, options),
        }
    before = results["redis_py_pubsub"]["cpu_us_per_message"]
    after = results["pubsub_link"]["cpu_us_per_message"]
    line = {
        "bench": "pubsub_read",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cores": os.cpu_count(),
        "loadavg": [round(v, 2) for v in os.getloadavg()],
        **vars(options),
        "results": results,
        "cpu_ratio": round(before / after, 1) if after else None,
    }
    print(json.dumps(line))


if __name__ == "__main__":
    main()
