"""The chaos suite's fault proxy (tests/chaos/fault_proxy.py) does what the scenarios rely on."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from tests.chaos.fault_proxy import FaultProxy

pytestmark = pytest.mark.integration


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with FaultProxy(server.server_address[1]) as proxy:
        yield proxy
    server.shutdown()
    server.server_close()


def echo(sock: socket.socket, size: int) -> bytes:
    sock.sendall(b"x" * size)
    received = b""
    while len(received) < size:
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def test_drop_all_closes_open_connections_and_new_ones_still_work(proxy: FaultProxy) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as first:
        assert echo(first, 10) == b"x" * 10
        assert proxy.drop_all() == 1
        try:
            assert first.recv(1) == b""
        except ConnectionResetError:
            pass
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as second:
        assert echo(second, 10) == b"x" * 10


def test_slow_adds_latency_and_caps_the_throughput(proxy: FaultProxy) -> None:
    proxy.slow(latency=0.2, bytes_per_second=20_000, burst=1000)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        started = time.monotonic()
        assert len(echo(sock, 10_000)) == 10_000
        elapsed = time.monotonic() - started
    # 0.2 s before the first byte moves, then 20,000 bytes (both ways) through one 20,000 B/s
    # budget less its 1,000-byte burst.
    assert elapsed >= 0.2 + 0.9, elapsed
    proxy.heal()
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        started = time.monotonic()
        assert len(echo(sock, 10_000)) == 10_000
        assert time.monotonic() - started < 0.5
