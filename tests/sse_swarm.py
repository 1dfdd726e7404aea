"""Many SSE streams from one thread: raw asyncio sockets speaking HTTP/1.1, for load and faults.

:class:`RawSseStream` sends the GET itself, reads the chunked body and parses SSE messages,
noting when each arrived; :meth:`RawSseStream.abort` drops the socket without a goodbye, the
way a killed browser does. :func:`sse_tokens` trades dev JWTs for sse_tokens over a few
keep-alive connections (httpx.AsyncClient costs several ms a request; this costs a fraction).
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson

from tests.sse_client import SseEvent, parse_message

STREAM_PATH = "/api/v1/events/stream"


class RawSseStream:
    """One stream over its own socket; events (and their arrival times) fill in as they come."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.target = parts.path + (f"?{parts.query}" if parts.query else "")
        self.request_headers = headers or {}
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.events: list[SseEvent] = []
        self.arrivals: list[float] = []
        self.ended = asyncio.Event()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def open(self, timeout: float = 10) -> int:
        """Connect, send the GET, read the status and headers, then read events in a task."""
        async with asyncio.timeout(timeout):
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            lines = [
                f"GET {self.target} HTTP/1.1",
                f"Host: {self.host}:{self.port}",
                "Accept: text/event-stream",
                *(f"{name}: {value}" for name, value in self.request_headers.items()),
            ]
            self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            await self._writer.drain()
            head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                self.headers[name.strip().lower()] = value.strip()
        self._task = asyncio.create_task(self._read_body())
        return self.status

    async def _read_body(self) -> None:
        assert self._reader is not None
        reader = self._reader
        chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        buffer = b""
        try:
            while True:
                if chunked:
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    if size == 0:
                        return
                    data = (await reader.readexactly(size + 2))[:-2]
                else:
                    data = await reader.read(65536)
                    if not data:
                        return
                buffer += data.replace(b"\r\n", b"\n")
                while b"\n\n" in buffer:
                    message, buffer = buffer.split(b"\n\n", 1)
                    self._parse(message.decode())
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            return
        finally:
            self.ended.set()

    def _parse(self, message: str) -> None:
        event = parse_message(message)
        if event is not None:
            self.events.append(event)
            self.arrivals.append(time.monotonic())

    def of_type(self, kind: str) -> list[SseEvent]:
        """Events of exactly this type."""
        return [e for e in self.events if e.event == kind]

    async def wait_for(
        self, predicate: Callable[[list[SseEvent]], bool], timeout: float = 10
    ) -> list[SseEvent]:
        """Wait until ``predicate(events)`` holds (AssertionError on timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.events):
                return list(self.events)
            await asyncio.sleep(0.01)
        raise AssertionError(f"timed out; got {[e.event for e in self.events]}")

    def abort(self, reset: bool = True) -> None:
        """Drop the connection at once: RST (``reset``) or a bare FIN, nothing flushed."""
        if self._writer is None:
            return
        sock = self._writer.get_extra_info("socket")
        if reset and sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._writer.transport.abort()

    async def aclose(self) -> None:
        """Close the socket (if still open) and stop reading."""
        if self._writer is not None:
            self._writer.transport.abort()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._writer is not None:
            await asyncio.gather(self._writer.wait_closed(), return_exceptions=True)


class _HttpConnection:
    """One keep-alive HTTP/1.1 connection for small JSON calls; much lighter than httpx."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: object, headers: dict[str, str] | None = None) -> Any:
        """POST JSON, return the JSON answer (AssertionError unless 200)."""
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        payload = orjson.dumps(body)
        lines = [
            f"POST {path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Content-Type: application/json",
            f"Content-Length: {len(payload)}",
            *(f"{name}: {value}" for name, value in (headers or {}).items()),
        ]
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        head = (await self._reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        length = int(head.split("content-length:")[1].split("\r\n")[0])
        answer = await self._reader.readexactly(length)
        status = int(head.split()[1])
        assert status == 200, f"POST {path}: {status} {answer!r}"
        return orjson.loads(answer)

    async def aclose(self) -> None:
        if self._writer is not None:
            self._writer.close()
            await asyncio.gather(self._writer.wait_closed(), return_exceptions=True)


async def sse_tokens(
    api_url: str, users: Sequence[str], connections: int = 8, ttl: int = 3600
) -> list[str]:
    """One fresh sse_token per user (a dev JWT, traded at /auth/sse-token), fetched over
    ``connections`` keep-alive connections in parallel."""
    parts = urlsplit(api_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    pool = [_HttpConnection(host, port) for _ in range(connections)]
    tokens: list[str] = [""] * len(users)

    async def shard(http: _HttpConnection, first: int) -> None:
        for n in range(first, len(users), connections):
            body = {"user_id": users[n], "ttl_seconds": ttl}
            jwt = (await http.post("/api/v1/auth/dev-token", body))["access_token"]
            auth = {"Authorization": f"Bearer {jwt}"}
            tokens[n] = (await http.post("/api/v1/auth/sse-token", None, auth))["sse_token"]

    try:
        await asyncio.gather(*(shard(http, n) for n, http in enumerate(pool)))
    finally:
        await asyncio.gather(*(http.aclose() for http in pool))
    return tokens


async def open_streams(
    api_url: str, users: Sequence[str], concurrency: int = 64, timeout: float = 30
) -> list[RawSseStream]:
    """Open one stream per user and wait for each ``connection.established``.

    On any failure every stream opened so far is closed before the error propagates.
    """
    tokens = await sse_tokens(api_url, users)
    streams = [RawSseStream(f"{api_url}{STREAM_PATH}?sse_token={token}") for token in tokens]
    limit = asyncio.Semaphore(concurrency)

    async def one(stream: RawSseStream) -> None:
        async with limit:
            status = await stream.open()
            assert status == 200, f"stream refused with {status}"
            await stream.wait_for(lambda events: bool(events), timeout=10)
            assert stream.events[0].event == "connection.established", stream.events[0]

    try:
        async with asyncio.timeout(timeout), asyncio.TaskGroup() as group:
            for stream in streams:
                group.create_task(one(stream))
    except BaseException:
        await close_all(streams)
        raise
    return streams


async def close_all(streams: Iterable[RawSseStream]) -> None:
    """Close every stream."""
    await asyncio.gather(*(stream.aclose() for stream in streams), return_exceptions=True)
