"""The load client: one child process holding many SSE streams over raw sockets.

Each process runs uvloop, opens its share of the streams at a set rate (open loop: a slow
server does not slow the arrivals), parses SSE by hand from the socket (chunked transfer coding
undone), and records per stream: setup time (connect to the first message, or to the response
head where the server sends none), the latency of every event (client parse time minus the
event's ``occurred_at``, one clock), and lost, duplicated and out-of-order events by the
per-recipient sequence number the publisher puts in ``message``.

The benchmark process drives it over a pipe: ``("go",)`` opens the streams, ``("count",)``
asks how many events arrived, ``("drop",)`` aborts every stream and reopens them at once
resuming from the cursor each held at the drop, ``("stop",)`` ends and sends the results.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection as Pipe
from typing import Any
from urllib.parse import quote

import orjson

HOST = "127.0.0.1"
TRACKED = b"task.progress-updated", b"system.notification"


@dataclass(frozen=True, slots=True)
class Target:
    """How a client reaches one server under test."""

    kind: str  # "ours" | "naive" | "nchan" | "floor"
    port: int
    jwt_secret: str = ""
    broadcast: bool = False  # nchan: subscribe to the broadcast channel too


@dataclass(slots=True)
class Stream:
    """What one connection saw."""

    user: str
    seen: set[int] = field(default_factory=set)
    last_seq: int = -1
    duplicates: int = 0
    out_of_order: int = 0
    cursor: str | None = None
    established: bool = False
    writer: asyncio.StreamWriter | None = None


class SseParser:
    """Incremental SSE parser: bytes in, (event, data, id) out."""

    __slots__ = ("_buffer", "_event", "_data", "_id")

    def __init__(self) -> None:
        self._buffer = b""
        self._event = b""
        self._data: list[bytes] = []
        self._id: bytes | None = None

    def feed(self, chunk: bytes) -> list[tuple[bytes, bytes, bytes | None]]:
        buffer = self._buffer + chunk
        messages = []
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            line = buffer[start:end]
            start = end + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if self._data or self._event:
                    messages.append((self._event or b"message", b"\n".join(self._data), self._id))
                self._event, self._data = b"", []
                continue
            if line[:1] == b":":
                continue
            name, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                self._data.append(value)
            elif name == b"event":
                self._event = value
            elif name == b"id":
                self._id = value
        self._buffer = buffer[start:]
        return messages


class ClientProtocol(asyncio.Protocol):
    """One stream's socket: response head, then body bytes to the SSE parser."""

    def __init__(self, client: LoadClient, stream: Stream, started: float) -> None:
        self.client = client
        self.stream = stream
        self.started = started
        self.head = b""
        self.in_body = False
        self.chunked = False
        self.chunk_left = 0
        self.chunk_buffer = b""
        self.parser = SseParser()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.in_body:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self.head[: end + 4], self.head[end + 4 :]
            status = int(head.split(b" ", 2)[1])
            if status != 200:
                self.client.fail(self.stream, f"http_{status}")
                assert self.transport is not None
                self.transport.abort()
                return
            self.in_body = True
            self.chunked = b"transfer-encoding: chunked" in head.lower()
            if self.client.target.kind == "nchan":
                self.client.established(self.stream, self.started)
        if self.chunked:
            data = self._unchunk(data)
        if data:
            for event, body, cursor in self.parser.feed(data):
                self.client.on_message(self.stream, event, body, cursor, self.started)

    def _unchunk(self, data: bytes) -> bytes:
        buffer = self.chunk_buffer + data
        out = []
        pos = 0
        size = len(buffer)
        while pos < size:
            if self.chunk_left:
                take = min(self.chunk_left, size - pos)
                out.append(buffer[pos : pos + take])
                pos += take
                self.chunk_left -= take
                continue
            end = buffer.find(b"\r\n", pos)
            if end < 0:
                break
            if end == pos:  # the CRLF that ends a chunk's data
                pos += 2
                continue
            self.chunk_left = int(buffer[pos:end].split(b";", 1)[0], 16)
            pos = end + 2
        self.chunk_buffer = buffer[pos:]
        return b"".join(out)

    def connection_lost(self, _exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class LoadClient:
    """One client process."""

    def __init__(self, pipe: Pipe, target: Target, users: list[str], ramp_rate: float) -> None:
        self.pipe = pipe
        self.target = target
        self.users = users
        self.ramp_rate = ramp_rate
        self.inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self.streams = [Stream(user) for user in users]
        self.tokens: dict[str, list[str]] = {}
        self.setup_ms = array("d")
        self.latency_ms = array("d")
        self.occurred = array("d")
        self.failures: Counter[str] = Counter()
        self.other_events: Counter[str] = Counter()
        self.delivered = 0
        self.closed_early = 0
        self.stopping = False
        self.pending_open = 0
        self._opened = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()

    # -- pipe ------------------------------------------------------------------------------

    def _on_pipe(self) -> None:
        try:
            message = self.pipe.recv()
        except (EOFError, OSError):
            message = ("stop",)
            asyncio.get_running_loop().remove_reader(self.pipe.fileno())
        if message[0] == "count":
            self.pipe.send(("count", self.delivered))
            return
        self.inbox.put_nowait(message)

    # -- events ----------------------------------------------------------------------------

    def established(self, stream: Stream, started: float) -> None:
        if stream.established:
            return
        stream.established = True
        self.setup_ms.append((time.perf_counter() - started) * 1000)
        self.pending_open -= 1
        if self.pending_open <= 0:
            self._opened.set()

    def fail(self, stream: Stream, kind: str) -> None:
        self.failures[kind] += 1
        if not stream.established:
            stream.established = True  # settled, not opened
            self.pending_open -= 1
            if self.pending_open <= 0:
                self._opened.set()

    def on_message(
        self, stream: Stream, event: bytes, data: bytes, cursor: bytes | None, started: float
    ) -> None:
        if event in TRACKED:
            now = time.time()
            body = orjson.loads(data)
            seq = int(body["message"])
            if cursor is not None:
                stream.cursor = cursor.decode()
            if seq in stream.seen:
                stream.duplicates += 1
                return
            stream.seen.add(seq)
            if seq < stream.last_seq:
                stream.out_of_order += 1
            else:
                stream.last_seq = seq
            self.delivered += 1
            occurred = datetime.fromisoformat(body["occurred_at"]).timestamp()
            self.latency_ms.append((now - occurred) * 1000)
            self.occurred.append(occurred)
        elif event == b"connection.established":
            if cursor is not None:
                stream.cursor = cursor.decode()
            self.established(stream, started)
        else:
            self.other_events[event.decode(errors="replace")] += 1

    # -- streams ---------------------------------------------------------------------------

    async def fetch_tokens(self, per_user: int) -> None:
        if self.target.kind != "ours":
            return
        from api.auth.tokens import mint_jwt

        pending = [user for user in self.users for _ in range(per_user)]

        async def worker() -> None:
            reader, writer = await asyncio.open_connection(HOST, self.target.port)
            try:
                while pending:
                    user = pending.pop()
                    jwt = mint_jwt(self.target.jwt_secret, user, f"s-{user}", 3600)
                    writer.write(
                        f"POST /api/v1/auth/sse-token HTTP/1.1\r\nHost: {HOST}\r\n"
                        f"Authorization: Bearer {jwt}\r\nContent-Length: 0\r\n\r\n".encode()
                    )
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n")[0])
                    body = await reader.readexactly(length)
                    if head.startswith(b"HTTP/1.1 200"):
                        self.tokens.setdefault(user, []).append(orjson.loads(body)["sse_token"])
                    else:
                        self.failures[f"sse_token_{head[9:12].decode()}"] += 1
            finally:
                writer.close()

        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(8))), 300)

    def _path(self, stream: Stream, resume: str | None) -> str:
        kind = self.target.kind
        if kind == "ours":
            token = self.tokens[stream.user].pop()
            path = f"/api/v1/events/stream?sse_token={token}"
        elif kind == "naive":
            path = f"/stream?user={stream.user}"
        else:
            path = f"/sub/{stream.user}" + ("/broadcast" if self.target.broadcast else "")
        head = f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nAccept: text/event-stream\r\n"
        if resume is not None:
            head += f"Last-Event-ID: {quote(resume, safe=':,-.')}\r\n"
        return head + "\r\n"

    async def _open(self, stream: Stream, resume: str | None) -> None:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        stream.established = False
        try:
            request = self._path(stream, resume).encode()
        except (KeyError, IndexError):
            self.fail(stream, "no_token")
            return
        try:
            transport, protocol = await asyncio.wait_for(
                loop.create_connection(
                    lambda: ClientProtocol(self, stream, started), HOST, self.target.port
                ),
                15,
            )
        except (OSError, TimeoutError) as exc:
            self.fail(stream, f"connect_{type(exc).__name__}")
            return
        transport.write(request)
        stream.writer = transport  # type: ignore[assignment]
        await protocol.closed
        if not self.stopping and stream.writer is transport:
            stream.writer = None
            self.closed_early += 1
            if not stream.established:
                self.fail(stream, "closed_before_open")

    def _spawn(self, stream: Stream, resume: str | None) -> None:
        task = asyncio.create_task(self._open(stream, resume))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def open_all(self, rate: float, resume: bool) -> None:
        """Open (or reopen, resuming) every stream at ``rate`` per second; wait until settled."""
        loop = asyncio.get_running_loop()
        self.pending_open = len(self.streams)
        self._opened.clear()
        start = loop.time()
        for i, stream in enumerate(self.streams):
            if rate > 0:
                delay = start + i / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            self._spawn(stream, stream.cursor if resume else None)
        if not self.streams:
            self._opened.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._opened.wait(), 60)
        if self.pending_open > 0:
            self.failures["still_opening"] += self.pending_open

    def drop_all(self) -> None:
        for stream in self.streams:
            if stream.writer is not None:
                writer, stream.writer = stream.writer, None
                writer.abort()  # type: ignore[attr-defined]

    async def run(self, tokens_per_user: int) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self.pipe.fileno(), self._on_pipe)
        os.set_blocking(self.pipe.fileno(), True)
        await self.fetch_tokens(tokens_per_user)
        self.pipe.send(("ready", sum(len(t) for t in self.tokens.values())))
        while True:
            message = await self.inbox.get()
            if message[0] == "go":
                began = len(self.setup_ms)
                await self.open_all(self.ramp_rate, resume=False)
                self.pipe.send(("opened", list(self.setup_ms[began:]), dict(self.failures)))
            elif message[0] == "drop":
                self.drop_all()
                self.pipe.send(("dropped", True))
            elif message[0] == "reopen":
                began = len(self.setup_ms)
                await self.open_all(0, resume=True)
                self.pipe.send(("reopened", list(self.setup_ms[began:]), dict(self.failures)))
            elif message[0] == "take":
                self.pipe.send(("taken", self.report()))
                self.reset()
            elif message[0] == "stop":
                break
        self.stopping = True
        self.drop_all()

    def reset(self) -> None:
        """Start a new phase: counts, latencies and sequence tracking from zero."""
        self.latency_ms = array("d")
        self.occurred = array("d")
        self.delivered = 0
        self.closed_early = 0
        self.failures.clear()
        self.other_events.clear()
        for stream in self.streams:
            stream.seen.clear()
            stream.last_seq = -1
            stream.duplicates = stream.out_of_order = 0

    def report(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms.tobytes(),
            "occurred": self.occurred.tobytes(),
            "seen": {s.user: len(s.seen) for s in self.streams},
            "duplicates": sum(s.duplicates for s in self.streams),
            "out_of_order": sum(s.out_of_order for s in self.streams),
            "streams_with_duplicates": sum(1 for s in self.streams if s.duplicates),
            "streams_out_of_order": sum(1 for s in self.streams if s.out_of_order),
            "other_events": dict(self.other_events),
            "closed_early": self.closed_early,
            "failures": dict(self.failures),
        }


def client_process(
    pipe: Pipe,
    target: Target,
    users: list[str],
    ramp_rate: float,
    tokens_per_user: int,
    lifetime: float,
) -> None:
    """Entry point of a load-client process."""
    import resource

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.alarm(int(lifetime))
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(LoadClient(pipe, target, users, ramp_rate).run(tokens_per_user))
