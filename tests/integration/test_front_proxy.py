"""Issue 15 (5): the shipped nginx front (deploy/nginx/realtime.conf, only its port and
upstream changed) closes sockets that trickle a request head or send nothing within its
header timeout, refuses an address's requests beyond its cap, refuses a 10 MB body, and still
carries an event stream live for longer than the header timeout. Loopback only."""

from __future__ import annotations

import re
import selectors
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from progress.events import TaskStarted
from progress.redis_server import RedisServer
from progress.redis_store import RedisEventStore, connect
from tests.nginx_server import SHIPPED, NginxProxy
from tests.servers import ApiServer
from tests.sse_client import SseClient

pytestmark = pytest.mark.integration

CONFIG = SHIPPED.read_text()
HEADER_TIMEOUT = int(re.search(r"client_header_timeout (\d+)s;", CONFIG).group(1))  # type: ignore[union-attr]
PER_IP = int(re.search(r"limit_conn realtime_conns_per_ip (\d+);", CONFIG).group(1))  # type: ignore[union-attr]
SLACK = 3.0


@pytest.fixture(scope="module")
def front(redis_server: RedisServer) -> Iterator[tuple[ApiServer, NginxProxy]]:
    with ApiServer(f"{redis_server.url}/0", SSE_TRUSTED_PROXIES='["127.0.0.1"]') as api:
        with NginxProxy(f"127.0.0.1:{api.port}", shipped=True) as nginx:
            yield api, nginx


def connect_from(address: str, port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(address, 0))
    sock.setblocking(False)
    return sock


def closed_by_peer(sock: socket.socket) -> bool:
    """True once the peer closed (FIN, RST, or an answer followed by a close)."""
    try:
        return sock.recv(65536) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_slow_and_idle_sockets_are_closed_while_a_stream_lives_on(
    front: tuple[ApiServer, NginxProxy], redis_url: str, user_id: str
) -> None:
    api, nginx = front
    stream = SseClient(
        f"{nginx.url}/api/v1/events/stream?sse_token={api.sse_token(api.jwt(user_id))}"
    )
    idle = [connect_from("127.0.0.2", nginx.port) for _ in range(100)]
    slow = [connect_from("127.0.0.5", nginx.port) for _ in range(100)]
    head = b"GET /api/v1/events/health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
    started = time.monotonic()
    open_socks = dict.fromkeys(idle + slow, 0)
    closed_at: dict[socket.socket, float] = {}
    selector = selectors.DefaultSelector()
    for sock in open_socks:
        selector.register(sock, selectors.EVENT_READ)
    try:
        assert stream.wait_open() == 200
        next_byte = time.monotonic()
        while open_socks and time.monotonic() < started + HEADER_TIMEOUT + SLACK:
            for key, _ in selector.select(timeout=0.1):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if closed_by_peer(sock):
                    closed_at[sock] = time.monotonic() - started
                    selector.unregister(sock)
                    del open_socks[sock]
            if time.monotonic() >= next_byte:  # one more byte of the head, twice a second
                next_byte += 0.5
                for sock in slow:
                    if sock in open_socks:
                        try:
                            sock.send(head[open_socks[sock] : open_socks[sock] + 1])
                            open_socks[sock] += 1
                        except OSError:
                            pass
        assert not open_socks, f"{len(open_socks)} sockets still open"
        assert max(closed_at.values()) <= HEADER_TIMEOUT + SLACK
        assert min(closed_at.values()) >= HEADER_TIMEOUT - 1  # the timeout, not an error

        # The stream outlived the header timeout and still delivers live.
        store = RedisEventStore(connect(redis_url))
        store.append(TaskStarted(user_id=user_id, task_id="after-the-timeout", task_name="t"))
        store.close()
        stream.wait_for(lambda ev: any(e.event == "task.progress-started" for e in ev), 3)
    finally:
        selector.close()
        for sock in idle + slow:
            sock.close()
        stream.close()


def test_an_address_beyond_its_cap_is_refused_while_another_is_served(
    front: tuple[ApiServer, NginxProxy],
) -> None:
    _, nginx = front
    # Requests whose body never comes stay open (counted) until the body timeout.
    held = [connect_from("127.0.0.3", nginx.port) for _ in range(PER_IP)]
    try:
        for sock in held:
            sock.sendall(b"POST /api/v1/novels HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
        health = f"{nginx.url}/api/v1/events/health"
        refused = None
        deadline = time.monotonic() + 5
        with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.3")) as capped:
            while refused is None and time.monotonic() < deadline:
                answer = capped.get(health)
                refused = answer if answer.status_code == 429 else None
        assert refused is not None, "the address was never capped"
        with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.4")) as other:
            assert other.get(health).status_code == 200
    finally:
        for sock in held:
            sock.close()


def test_a_10_mb_body_is_refused_by_the_front(front: tuple[ApiServer, NginxProxy]) -> None:
    _, nginx = front
    with socket.create_connection(("127.0.0.1", nginx.port), timeout=5) as sock:
        sock.sendall(
            b"POST /api/v1/novels HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10485760\r\n\r\n"
        )
        assert sock.recv(65536).startswith(b"HTTP/1.1 413")
