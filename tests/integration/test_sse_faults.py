"""Faults at the edges of the SSE tier: stuck, vanishing and many clients, shutdown, token
expiry, and a reverse proxy in front. Real uvicorn, real Redis, real HTTP on loopback."""

from __future__ import annotations

import asyncio
import os
import re
import resource
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import httpx
import jwt as pyjwt
import pytest

from progress.events import TaskUpdated
from progress.redis_store import RedisEventStore, connect
from tests.integration.test_sse_stream import open_stream, updates
from tests.nginx_server import NGINX, NginxProxy
from tests.servers import ApiServer
from tests.sse_client import SseClient
from tests.sse_swarm import STREAM_PATH, close_all, open_streams

pytestmark = pytest.mark.integration


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisEventStore]:
    client = connect(redis_url)
    yield RedisEventStore(client)
    client.close()


@contextmanager
def api_server(redis_url: str, **env: str) -> Iterator[ApiServer]:
    """A server of this test's own (its settings, its fate), closed afterwards."""
    server = ApiServer(redis_url, SSE_HEARTBEAT_SECONDS="1", **env)
    try:
        yield server.start()
    finally:
        server.close()


def health(api: ApiServer) -> dict:
    return httpx.get(f"{api.url}/api/v1/events/health", timeout=5).json()


# --- 1. a client that stops reading ----------------------------------------------------------

STUCK_EVENTS = 1000
STUCK_MESSAGE = "x" * 8192  # 1000 x 8 KiB: far beyond every socket buffer on the way


def stuck_stream(api: ApiServer, user: str) -> socket.socket:
    """Open a stream on a raw socket with a tiny receive buffer; read its status, then stop."""
    token = api.sse_token(api.jwt(user))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    try:
        sock.connect(("127.0.0.1", api.port))
        request = f"GET {STREAM_PATH}?sse_token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        sock.sendall(request.encode())
        head = b""
        while b"\r\n" not in head:
            piece = sock.recv(1)
            assert piece, "the server closed the stream before answering"
            head += piece
        assert head.startswith(b"HTTP/1.1 200 "), head
    except BaseException:
        sock.close()
        raise
    return sock


def big_updates(user: str, start: int, count: int) -> list[tuple[TaskUpdated, tuple[()]]]:
    """Big updates of distinct tasks (nothing superseded, so nothing may be coalesced away)."""
    return [
        (TaskUpdated(user_id=user, task_id=f"s{n}", percent=1, message=STUCK_MESSAGE), ())
        for n in range(start, start + count)
    ]


def flood(store: RedisEventStore, user: str, count: int = STUCK_EVENTS) -> None:
    """``count`` big updates, paced like a busy task so the stream keeps up until its socket
    is full; from then on its queue fills, then overflows."""
    for start in range(0, count, 10):
        store.append_many(big_updates(user, start, 10))
        time.sleep(0.02)


def drain(sock: socket.socket, until: float) -> tuple[bytes, bool]:
    """Read what the server sent; True when the response ended (last chunk, or EOF)."""
    received = bytearray()
    while time.monotonic() < until:
        sock.settimeout(max(0.01, min(0.5, until - time.monotonic())))
        try:
            chunk = sock.recv(1 << 20)
        except TimeoutError:
            continue
        except ConnectionError:
            return bytes(received), True
        received += chunk
        if not chunk or received.endswith(b"\r\n0\r\n\r\n"):
            return bytes(received), True
    return bytes(received), False


def test_a_client_that_stops_reading_delays_nobody_else(
    redis_url: str, store: RedisEventStore, user_id: str
) -> None:
    with api_server(redis_url, SSE_QUEUE_SIZE="50") as api:
        stuck_user = f"{user_id}-stuck"
        others = [f"{user_id}-{n}" for n in range(100)]
        stuck = stuck_stream(api, stuck_user)
        try:
            latencies = asyncio.run(_deliver_around_a_stuck_client(api, store, stuck_user, others))
        finally:
            stuck.close()
        worst = max(latencies)
        assert worst < 2.0, f"slowest of {len(latencies)} deliveries took {worst:.2f} s"
        assert len(latencies) == 5 * len(others)


async def _deliver_around_a_stuck_client(
    api: ApiServer, store: RedisEventStore, stuck_user: str, others: list[str]
) -> list[float]:
    streams = await open_streams(api.url, others)
    latencies: list[float] = []
    try:
        # Fill the stuck client's socket buffers and overflow its bounded queue first...
        await asyncio.to_thread(flood, store, stuck_user)
        # ...then, while it keeps being flooded, everyone else gets one update per round.
        for round_ in range(5):
            batch = big_updates(stuck_user, STUCK_EVENTS + 100 * round_, 100)
            batch += [(TaskUpdated(user_id=u, task_id="t", percent=round_), ()) for u in others]
            published = time.monotonic()
            await asyncio.to_thread(store.append_many, batch)
            for stream in streams:
                events = await stream.wait_for(
                    lambda events, r=round_: len(updates(events)) > r, timeout=5
                )
                assert updates(events)[round_] == round_
                arrivals = [
                    stream.arrivals[i]
                    for i, e in enumerate(events)
                    if e.event == "task.progress-updated"
                ]
                latencies.append(arrivals[round_] - published)
    finally:
        await close_all(streams)
    return latencies


TASK_ID = re.compile(rb'"task_id":"s(\d+)"')
LAST_ID = re.compile(rb"\nid: ([^\r\n]+)\r?\n")


def test_a_stuck_client_is_told_to_reconnect_and_loses_nothing_by_resuming(
    redis_url: str, store: RedisEventStore, user_id: str
) -> None:
    with api_server(redis_url, SSE_QUEUE_SIZE="50") as api:
        jwt = api.jwt(user_id)
        stuck = stuck_stream(api, user_id)
        try:
            flood(store, user_id)
            time.sleep(0.5)  # the hub routed the whole flood
            # The client reads again: what was in flight, a reconnect hint, the response's end.
            received, ended = drain(stuck, time.monotonic() + 5)
        finally:
            stuck.close()
        seen = [int(n) for n in TASK_ID.findall(received)]
        assert seen, "the stuck client got no events at all"
        assert seen == list(range(len(seen))), _gap(seen)
        assert b"event: reconnect" in received, "no reconnect hint to the slow client"
        assert ended, "the server kept the overflowed stream open"
        cursor = LAST_ID.findall(received)[-1].decode()

        resumed = SseClient(
            f"{api.url}{STREAM_PATH}?sse_token={api.sse_token(jwt)}", {"Last-Event-ID": cursor}
        )
        try:
            last = f"s{STUCK_EVENTS - 1}"
            events = resumed.wait_for(
                lambda events: any(
                    e.event == "task.progress-updated" and e.json["task_id"] == last for e in events
                ),
                timeout=15,
            )
        finally:
            resumed.close()
        rest = [int(e.json["task_id"][1:]) for e in events if e.event == "task.progress-updated"]
        assert seen + rest == list(range(STUCK_EVENTS))


def test_a_write_stuck_longer_than_the_send_timeout_ends_the_stream(
    redis_url: str, store: RedisEventStore, user_id: str
) -> None:
    # a queue that never overflows: only the stuck write can end this stream
    with api_server(redis_url, SSE_QUEUE_SIZE="100000", SSE_SEND_TIMEOUT_SECONDS="1") as api:
        stuck = stuck_stream(api, user_id)
        try:
            flood(store, user_id)
            deadline = time.monotonic() + 5
            while health(api)["connections"] and time.monotonic() < deadline:
                time.sleep(0.1)
            assert health(api)["connections"] == 0, "the stuck stream is still open"
            _received, ended = drain(stuck, time.monotonic() + 5)
        finally:
            stuck.close()
        assert ended, "the client's socket was left open"


def _gap(seen: list[int]) -> str:
    at = next(i for i, n in enumerate(seen) if n != i)
    return (
        f"after s{seen[at - 1]} the slow client got s{seen[at]}: s{seen[at - 1] + 1}.."
        f"s{seen[at] - 1} were skipped, and its cursor (Last-Event-ID) already moved past them"
    )


# --- 2. a thousand clients that vanish -------------------------------------------------------


@pytest.fixture
def many_files() -> Iterator[None]:
    """Room for 1,000 sockets here and in the server (which inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 8192 if hard == resource.RLIM_INFINITY else min(8192, hard)
    assert wanted >= 4096, f"the hard limit on open files ({hard}) is too low for this test"
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.usefixtures("many_files")
def test_a_thousand_vanished_clients_leave_nothing_behind(
    redis_url: str, store: RedisEventStore, user_id: str
) -> None:
    users = [f"{user_id}-{n}" for n in range(1000)]
    with api_server(redis_url) as api:
        asyncio.run(_open_and_drop(api, users))

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status = health(api)
            leases = store.client.keys(f"rt:{{u:{user_id}-*}}:conn*")
            if status["connections"] == status["subscribed_users"] == 0 and not leases:
                break
            time.sleep(0.2)
        assert (status["connections"], status["subscribed_users"]) == (0, 0)
        assert status["pubsub_link"] == "up"
        leased = {key.decode().split("}")[0][len("rt:{u:") :] for key in leases}
        assert not leases, (
            f"{len(leased)} of {len(users)} vanished users still hold connection leases "
            f"in Redis (e.g. {sorted(leased)[:3]}); each blocks one of the user's "
            "2 stream slots until the lease lapses"
        )

        # The slots are free again: a user can open their 2 streams at once.
        jwt = api.jwt(users[0])
        again = [
            SseClient(f"{api.url}{STREAM_PATH}?sse_token={api.sse_token(jwt)}") for _ in range(2)
        ]
        try:
            assert [c.wait_open() for c in again] == [200, 200]
        finally:
            for client in again:
                client.close()


async def _open_and_drop(api: ApiServer, users: list[str]) -> None:
    streams = await open_streams(api.url, users)
    try:
        status = await asyncio.to_thread(health, api)
        assert status["connections"] == status["subscribed_users"] == len(users)
        for n, stream in enumerate(streams):
            stream.abort(reset=n % 2 == 0)  # half reset, half a bare FIN; nobody says goodbye
    finally:
        await close_all(streams)


# --- 3. clean shutdown -----------------------------------------------------------------------


def test_shutdown_tells_every_client_to_come_back_at_a_randomized_time(
    redis_url: str, user_id: str
) -> None:
    with api_server(redis_url) as api:
        clients = [open_stream(api, api.jwt(f"{user_id}-{n}")) for n in range(10)]
        try:
            began = time.monotonic()
            api.stop()
            stopped_in = time.monotonic() - began
            for client in clients:
                assert client.ended.wait(5), "the stream stayed open after shutdown"
            farewells = [client.events[-1] for client in clients]
        finally:
            for client in clients:
                client.close()
    assert [e.event for e in farewells] == ["server.restart"] * len(clients), (
        f"last events: {[e.event for e in farewells]}"
    )
    retries = [e.retry for e in farewells]
    assert all(r is not None and 3000 <= r <= 4 * 3000 for r in retries), retries
    assert len(set(retries)) > 1, f"every client would come back at once: {retries}"
    assert [e.json["retry_ms"] for e in farewells] == retries
    assert stopped_in < 4, f"the server took {stopped_in:.1f} s to stop"


# --- 4. token expiry -------------------------------------------------------------------------


def test_a_stream_does_not_outlive_its_jwt(redis_url: str, user_id: str) -> None:
    with api_server(redis_url, SSE_EXPIRY_NOTICE_SECONDS="5") as api:
        jwt = api.jwt(user_id, ttl=10)
        exp = pyjwt.decode(jwt, options={"verify_signature": False})["exp"]
        client = open_stream(api, jwt)
        try:
            events = client.wait_for(
                lambda events: any(e.event == "auth.expiring" for e in events), timeout=12
            )
            noticed_at = time.time()
            notice = next(e for e in events if e.event == "auth.expiring")
            assert client.ended.wait(3), "the stream went on after auth.expiring"
        finally:
            client.close()
    assert noticed_at < exp, "auth.expiring came after the JWT had expired"
    assert noticed_at > exp - 5 - 2, "auth.expiring came long before the notice period"
    assert datetime.fromisoformat(notice.json["expires_at"]).timestamp() == exp
    assert notice.id is not None, "the notice carries the cursor to resume with a new token"


# --- 5. behind nginx -------------------------------------------------------------------------


def test_events_pass_through_nginx_at_once(
    redis_url: str, store: RedisEventStore, user_id: str
) -> None:
    if not os.access(NGINX, os.X_OK):
        pytest.fail(f"{NGINX} not found: run scripts/install-system-deps.sh as root")
    with api_server(redis_url) as api, NginxProxy(api.url) as proxy:
        token = api.sse_token(api.jwt(user_id))
        client = SseClient(f"{proxy.url}{STREAM_PATH}?sse_token={token}")
        try:
            client.wait_for(lambda events: any(e.event == "connection.established" for e in events))
            assert client.response_headers is not None
            assert client.response_headers["content-type"].startswith("text/event-stream")
            store.append(TaskUpdated(user_id=user_id, task_id="t", percent=42))
            client.wait_for(lambda events: updates(events) == [42], timeout=1)
        finally:
            client.close()


def test_streams_work_on_a_server_that_allows_no_direct_writes(
    redis_url: str, store: RedisEventStore, user_id: str
) -> None:
    """uvicorn's h11 protocol: DirectWriter steps its ``send`` as it does httptools' (only the
    public ASGI callable is used), and every frame arrives in order, with heartbeats."""
    with api_server(redis_url, UVICORN_HTTP="h11") as api:
        client = open_stream(api, api.jwt(user_id))
        try:
            for percent in range(1, 51):
                store.append(TaskUpdated(user_id=user_id, task_id="t", percent=percent))
            client.wait_for(lambda events: updates(events) == list(range(1, 51)), timeout=5)
            client.wait_for(lambda events: any(e.event == "heartbeat" for e in events), timeout=5)
        finally:
            client.close()
