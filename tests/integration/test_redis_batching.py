"""Issue 8: the API's auto-pipelining Redis client (api/hub/redis_batching.py) on a real Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
import redis
from redis.exceptions import ResponseError

from api.hub.redis_batching import BatchingRedis
from progress.redis_server import RedisServer
from progress.redis_store import connect_async

pytestmark = pytest.mark.integration


def _client(url: str, connections: int, **options: object) -> BatchingRedis:
    client = connect_async(url, max_connections=connections, client_class=BatchingRedis, **options)
    assert isinstance(client, BatchingRedis)
    return client


def test_a_burst_of_commands_gets_every_reply_right_on_two_connections(redis_url: str) -> None:
    monitor = redis.Redis.from_url(redis_url)
    before = len(monitor.client_list())

    async def burst() -> tuple[list[object], int]:
        client = _client(redis_url, 2)
        try:
            await asyncio.gather(*(client.set(f"batch:{i}", i) for i in range(2000)))
            replies = await asyncio.gather(*(client.get(f"batch:{i}") for i in range(2000)))
            return replies, len(monitor.client_list()) - before
        finally:
            await client.aclose()

    replies, connections = asyncio.run(burst())
    assert replies == [str(i).encode() for i in range(2000)]
    assert connections <= 2
    monitor.close()


def test_an_error_reply_reaches_only_the_command_that_caused_it(redis_url: str) -> None:
    async def mixed() -> list[object]:
        client = _client(redis_url, 1)
        try:
            await client.delete("batch:counter")
            await client.set("batch:text", "not a number")
            return await asyncio.gather(
                client.incr("batch:counter"),
                client.incr("batch:text"),
                client.incr("batch:counter"),
                return_exceptions=True,
            )
        finally:
            await client.aclose()

    first, failed, second = asyncio.run(mixed())
    assert (first, second) == (1, 2)
    assert isinstance(failed, ResponseError)


def test_scripts_load_themselves_when_redis_does_not_know_them(redis_url: str) -> None:
    redis.Redis.from_url(redis_url).script_flush()

    async def scripted() -> list[object]:
        client = _client(redis_url, 1)
        try:
            double = client.register_script("return tonumber(ARGV[1]) * 2")
            return await asyncio.gather(*(double(args=[i]) for i in range(50)))
        finally:
            await client.aclose()

    assert asyncio.run(scripted()) == [i * 2 for i in range(50)]


def test_replies_keep_redis_py_parsing_and_decoding(redis_url: str) -> None:
    async def parsed() -> list[object]:
        client = connect_async(
            redis_url, max_connections=1, client_class=BatchingRedis, decode_responses=True
        )
        try:
            await client.delete("batch:hash", "batch:missing")
            return await asyncio.gather(
                client.hset("batch:hash", mapping={"a": "1", "b": "2"}),
                client.hgetall("batch:hash"),
                client.set("batch:missing", "x", nx=True),
                client.set("batch:missing", "y", nx=True),
                client.exists("batch:hash", "batch:nothing"),
                client.get("batch:nothing"),
            )
        finally:
            await client.aclose()

    assert asyncio.run(parsed()) == [2, {"a": "1", "b": "2"}, True, None, 1, None]


def test_commands_after_redis_dropped_the_connections_get_their_replies(redis_url: str) -> None:
    monitor = redis.Redis.from_url(redis_url)

    async def across_a_drop() -> list[object]:
        client = _client(redis_url, 2, client_name="dropped-by-test")
        try:
            await asyncio.gather(*(client.set(f"drop:{i}", i) for i in range(200)))
            # only this client's connections: the session's Redis serves other fixtures too
            ours = [c["id"] for c in monitor.client_list() if c["name"] == "dropped-by-test"]
            assert ours, "the client's connections are open"
            for client_id in ours:
                monitor.client_kill_filter(_id=client_id)
            return await asyncio.gather(*(client.get(f"drop:{i}") for i in range(200)))
        finally:
            await client.aclose()

    assert asyncio.run(across_a_drop()) == [str(i).encode() for i in range(200)]
    monitor.close()


def test_a_redis_that_stops_answering_fails_the_commands_in_bounded_time() -> None:
    with RedisServer() as server:
        monitor = redis.Redis(host="127.0.0.1", port=server.port)
        pid = int(monitor.info("server")["process_id"])

        async def across_a_stall() -> tuple[BaseException | None, float, object]:
            client = _client(f"{server.url}/0", 2, socket_timeout=0.3)
            try:
                await client.set("stall", "before")
                os.kill(pid, signal.SIGSTOP)  # accepts bytes, answers nothing
                started = time.monotonic()
                try:
                    await asyncio.wait_for(client.get("stall"), 20)
                    error = None
                except BaseException as exc:  # the test reports what it got
                    error = exc
                waited = time.monotonic() - started
                os.kill(pid, signal.SIGCONT)
                return error, waited, await client.get("stall")
            finally:
                os.kill(pid, signal.SIGCONT)
                await client.aclose()

        error, waited, after = asyncio.run(across_a_stall())
        monitor.close()
    # Each try waits one socket timeout for the whole exchange, never forever.
    assert isinstance(error, redis.exceptions.TimeoutError | redis.exceptions.ConnectionError)
    assert waited < 10
    assert after == b"before"
