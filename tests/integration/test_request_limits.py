"""Issue 15 (5): a request body over SSE_MAX_BODY_BYTES is refused 413 before authentication
or parsing, whether its length is declared or it arrives chunked."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator

import orjson
import pytest

from progress.redis_server import RedisServer
from tests.servers import ApiServer

pytestmark = pytest.mark.integration

TEN_MB = 10 * 1024 * 1024
LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def api(redis_server: RedisServer) -> Iterator[ApiServer]:
    with ApiServer(f"{redis_server.url}/0", SSE_MAX_BODY_BYTES=str(LIMIT)) as server:
        yield server


def read_response(sock: socket.socket, timeout: float = 5) -> tuple[int, dict]:
    """Status and JSON body of one response (Content-Length framed)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed without a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    while len(body) < int(headers["content-length"]):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), orjson.loads(body)


def request_head(api: ApiServer, framing: str) -> bytes:
    return (
        f"POST /api/v1/novels HTTP/1.1\r\nHost: 127.0.0.1:{api.port}\r\n"
        f"Content-Type: application/json\r\n{framing}\r\n\r\n"
    ).encode()


def test_a_declared_10_mb_body_is_refused_before_it_is_sent(api: ApiServer) -> None:
    with socket.create_connection(("127.0.0.1", api.port), timeout=5) as sock:
        # No token and no body: the answer must come from the declared length alone.
        sock.sendall(request_head(api, f"Content-Length: {TEN_MB}"))
        started = time.monotonic()
        status, body = read_response(sock)
    assert (status, body["error"]["code"]) == (413, "body_too_large")
    assert time.monotonic() - started < 2


def test_a_chunked_body_is_cut_at_the_limit(api: ApiServer) -> None:
    chunk = b"x" * 16384
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", api.port), timeout=5) as sock:
        sock.sendall(request_head(api, "Transfer-Encoding: chunked"))
        while sent < TEN_MB:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            sock.sendall(framed)
            sent += len(chunk)
            if sent > 2 * LIMIT:
                # past the limit: wait for the answer instead of pushing more
                select.select([sock], [], [], 5)
                break
        status, body = read_response(sock)
    assert (status, body["error"]["code"]) == (413, "body_too_large")
    assert sent <= 2 * LIMIT + len(chunk)
