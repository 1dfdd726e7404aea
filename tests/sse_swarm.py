"""Many SSE streams from one thread: raw asyncio sockets speaking HTTP/1.1, for load and faults.

:class:`RawSseStream` sends the GET itself, reads the chunked body and parses SSE messages,
noting when each arrived; :meth:`RawSseStream.abort` drops the socket the way a crashed browser
or a lost laptop lid does. :func:`sse_tokens` trades dev JWTs for sse_tokens in parallel.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from urllib.parse import urlsplit

import httpx

from tests.sse_client import SseEvent

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
        fields: dict[str, str] = {}
        data: list[str] = []
        for line in message.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            else:
                fields[name] = value
        if data or "event" in fields:
            retry = int(fields["retry"]) if "retry" in fields else None
            event = SseEvent(
                fields.get("event", "message"), "\n".join(data), fields.get("id"), retry
            )
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


async def sse_tokens(
    api_url: str, users: Sequence[str], concurrency: int = 32, ttl: int = 3600
) -> list[str]:
    """One fresh sse_token per user (dev JWT, then sse-token), fetched in parallel."""
    limit = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=api_url, timeout=10, limits=limits) as client:

        async def one(user: str) -> str:
            async with limit:
                body = {"user_id": user, "ttl_seconds": ttl}
                jwt = (await client.post("/api/v1/auth/dev-token", json=body)).json()
                response = await client.post(
                    "/api/v1/auth/sse-token",
                    headers={"Authorization": f"Bearer {jwt['access_token']}"},
                )
                response.raise_for_status()
                return str(response.json()["sse_token"])

        return list(await asyncio.gather(*(one(user) for user in users)))


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
