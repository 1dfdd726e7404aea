"""Issue 8: the hub's own pub/sub link (api/hub/pubsub_link.py) on a real Redis."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import redis
import uvloop

from api.hub.pubsub_link import LinkLost, PubSubLink, RedisAddress, Replies
from progress.events import TaskUpdated
from progress.keys import KeyLayout, user_stream
from progress.redis_server import RedisServer, find_redis_server
from progress.redis_store import RedisEventStore, connect
from tests.integration.test_sse_stream import open_stream, updates
from tests.servers import ApiServer

pytestmark = pytest.mark.integration


class Listener:
    """Collects what the link hands over, batch by batch."""

    def __init__(self) -> None:
        self.batches: list[Replies] = []

    def __call__(self, replies: Replies) -> None:
        self.batches.append(replies)

    @property
    def replies(self) -> list[list[bytes]]:
        return [reply for batch in self.batches for reply in batch]

    def of_kind(self, kind: bytes) -> list[list[bytes]]:
        return [reply for reply in self.replies if reply[0] == kind]

    async def wait_for(self, kind: bytes, count: int, timeout: float = 5.0) -> list[list[bytes]]:
        deadline = time.monotonic() + timeout
        while len(self.of_kind(kind)) < count:
            assert time.monotonic() < deadline, f"{count} {kind!r} not received: {self.replies}"
            await asyncio.sleep(0.01)
        return self.of_kind(kind)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    """Run on uvloop, the API's event loop."""
    uvloop.run(scenario())


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def test_a_burst_arrives_whole_and_in_order_in_a_few_batches(redis_url: str) -> None:
    publisher = redis.Redis.from_url(redis_url)

    async def scenario() -> None:
        listener = Listener()
        link = await PubSubLink.open(RedisAddress.from_url(redis_url), listener)
        try:
            link.subscribe("link-test:burst")
            await listener.wait_for(b"subscribe", 1)
            # Published while this loop is blocked: the messages pile up in the socket.
            with publisher.pipeline(transaction=False) as pipe:
                for n in range(5000):
                    pipe.publish("link-test:burst", f"event {n}")
                pipe.execute()
            messages = await listener.wait_for(b"message", 5000)
        finally:
            link.close()
        assert [m[2] for m in messages] == [f"event {n}".encode() for n in range(5000)]
        assert {m[1] for m in messages} == {b"link-test:burst"}
        assert len(listener.batches) <= 100, "the link hands over each read's replies together"

    run(scenario)
    publisher.close()


def test_each_channel_is_confirmed_and_an_unsubscribed_one_goes_quiet(redis_url: str) -> None:
    publisher = redis.Redis.from_url(redis_url)

    async def scenario() -> None:
        listener = Listener()
        link = await PubSubLink.open(RedisAddress.from_url(redis_url), listener)
        try:
            link.subscribe("link-test:a", "link-test:b", "link-test:c")
            acks = await listener.wait_for(b"subscribe", 3)
            assert [ack[1] for ack in acks] == [b"link-test:a", b"link-test:b", b"link-test:c"]

            link.unsubscribe("link-test:b")
            await listener.wait_for(b"unsubscribe", 1)
            assert publisher.publish("link-test:b", "nobody hears this") == 0
            assert publisher.publish("link-test:c", "heard") == 1
            messages = await listener.wait_for(b"message", 1)
            assert messages == [[b"message", b"link-test:c", b"heard"]]
        finally:
            link.close()

    run(scenario)
    publisher.close()


def test_a_redis_restart_ends_the_link_at_once_and_a_new_one_hears_again(
    own_redis: RedisServer,
) -> None:
    address = RedisAddress.from_url(f"{own_redis.url}/0")

    async def scenario() -> None:
        old = await PubSubLink.open(address, Listener())
        old.subscribe("link-test:restart")
        watching = asyncio.create_task(old.watch(idle_seconds=30))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await asyncio.to_thread(own_redis.restart)
        with pytest.raises(LinkLost, match="closed"):
            await asyncio.wait_for(watching, 5)
        assert time.monotonic() - started < 5, "a closed socket is noticed without waiting"

        listener = Listener()
        new = await PubSubLink.open(address, listener)
        try:
            new.subscribe("link-test:restart")
            await listener.wait_for(b"subscribe", 1)
            publisher = redis.Redis.from_url(own_redis.url)
            publisher.publish("link-test:restart", "after")
            publisher.close()
            assert (await listener.wait_for(b"message", 1))[0][2] == b"after"
        finally:
            new.close()

    run(scenario)


def test_a_link_that_does_not_answer_ping_is_taken_for_half_open(own_redis: RedisServer) -> None:
    pauser = redis.Redis.from_url(own_redis.url)

    async def scenario() -> None:
        link = await PubSubLink.open(RedisAddress.from_url(own_redis.url), Listener())
        link.subscribe("link-test:idle")
        # An idle link that answers PING lives on.
        assert not await _lost_within(link, idle_seconds=0.2, seconds=1.0)
        # A paused Redis answers nothing, like a peer gone without a FIN.
        pauser.execute_command("CLIENT", "PAUSE", "3000", "ALL")
        started = time.monotonic()
        with pytest.raises(LinkLost, match="silent"):
            await asyncio.wait_for(link.watch(idle_seconds=0.2), 2)
        assert time.monotonic() - started < 1.0

    try:
        run(scenario)
    finally:
        pauser.execute_command("CLIENT", "UNPAUSE")
        pauser.close()


async def _lost_within(link: PubSubLink, idle_seconds: float, seconds: float) -> bool:
    try:
        await asyncio.wait_for(link.watch(idle_seconds), seconds)
    except TimeoutError:
        return False
    except LinkLost:
        return True
    raise AssertionError("watch returned")


def test_credentials_in_the_url_authenticate_and_wrong_ones_fail_clearly(
    own_redis: RedisServer,
) -> None:
    admin = redis.Redis.from_url(own_redis.url)
    admin.execute_command("ACL", "SETUSER", "hub", "on", ">s3cret/pw", "&*", "+@all")
    host = f"{own_redis.host}:{own_redis.port}"

    async def scenario() -> None:
        listener = Listener()
        link = await PubSubLink.open(
            RedisAddress.from_url(f"redis://hub:s3cret%2Fpw@{host}/0"), listener
        )
        link.subscribe("link-test:auth")
        assert (await listener.wait_for(b"subscribe", 1))[0][1] == b"link-test:auth"
        link.close()
        with pytest.raises(LinkLost, match="AUTH"):
            await PubSubLink.open(RedisAddress.from_url(f"redis://hub:wrong@{host}/0"), Listener())

    run(scenario)
    admin.close()


def test_a_unix_socket_url_connects(tmp_path: Path) -> None:
    socket_path = tmp_path / "redis.sock"
    server = subprocess.Popen(
        [find_redis_server(), "--port", "0", "--unixsocket", str(socket_path), "--save", ""],
        stdout=subprocess.DEVNULL,
        cwd=tmp_path,
    )

    async def scenario() -> None:
        listener = Listener()
        address = RedisAddress.from_url(f"unix://{socket_path}?db=0")
        deadline = time.monotonic() + 10
        while True:
            try:
                link = await PubSubLink.open(address, listener)
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not open its socket"
                await asyncio.sleep(0.05)
        try:
            link.subscribe("link-test:unix")
            assert (await listener.wait_for(b"subscribe", 1))[0][1] == b"link-test:unix"
        finally:
            link.close()

    try:
        run(scenario)
    finally:
        server.terminate()
        server.wait(5)


def test_the_hub_drops_a_malformed_message_and_the_stream_goes_on(
    redis_url: str, user_id: str
) -> None:
    store = RedisEventStore(connect(redis_url))
    with ApiServer(redis_url) as api:
        stream = open_stream(api, api.jwt(user_id))
        try:
            channel = KeyLayout("rt").channel(user_stream(user_id))
            store.client.publish(channel, b"not an event")
            store.append(TaskUpdated(user_id=user_id, task_id="t", percent=5))
            events = stream.wait_for(lambda events: updates(events) == [5])
            assert not [e for e in events if e.event in ("stream.reset", "reconnect")]
        finally:
            stream.close()
        assert "dropped a malformed message" in api.log_text
    store.client.close()
