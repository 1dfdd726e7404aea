"""A loopback TCP proxy that misbehaves on command: drop every connection, add latency, throttle.

It runs its own asyncio loop in a daemon thread, so synchronous tests drive it with plain
method calls. Each accepted connection gets a pipe per direction; a pipe reads chunks, holds
each until ``latency`` after it was read, then writes it paced by a :class:`Throttle` (bytes per
second, shared by both directions of all connections, like one slow link). ``drop_all()``
closes every open connection at once (the peers see a reset or EOF, as when a NAT or a Wi-Fi
link forgets them); new connections are accepted as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field

from progress.redis_server import free_port

CHUNK = 16 * 1024


@dataclass
class Throttle:
    """A token bucket in bytes: how long to wait before sending ``size`` bytes. Pure: the
    caller passes the time. ``rate`` 0 means unlimited."""

    rate: float = 0.0
    burst: float = 4096.0
    _tokens: float = field(default=0.0, init=False)
    _at: float | None = field(default=None, init=False)

    def delay(self, size: int, now: float) -> float:
        """Seconds to wait before ``size`` bytes may go out at ``now``; books them."""
        if self.rate <= 0:
            return 0.0
        if self._at is None:
            self._tokens, self._at = self.burst, now
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        self._tokens -= size
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class FaultProxy:
    """``127.0.0.1:<port>`` forwarding to ``target_host:target_port``; start, then command."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.latency = 0.0
        self.throttle = Throttle()
        self.accepted = 0
        self.dropped = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        """Listen (returns once the port accepts connections)."""
        self._thread.start()
        self._call(self._listen())
        return self

    def drop_all(self) -> int:
        """Close every open connection now; how many client connections were dropped."""
        return self._call(self._drop_all())

    def slow(self, latency: float, bytes_per_second: float, burst: int = 4096) -> None:
        """Hold every chunk ``latency`` seconds and cap the throughput (0: unlimited)."""
        self._call(self._set_slow(latency, Throttle(bytes_per_second, burst)))

    def heal(self) -> None:
        """Back to a plain, fast proxy (open connections stay open)."""
        self.slow(0.0, 0.0)

    def close(self) -> None:
        """Stop listening, drop everything, stop the loop."""
        if self._thread.is_alive():
            self._call(self._shutdown())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, coroutine: Coroutine[object, object, int]) -> int:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    async def _set_slow(self, latency: float, throttle: Throttle) -> int:
        self.latency, self.throttle = latency, throttle
        return 0

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return 0

    async def _drop_all(self) -> int:
        clients = len(self._writers) // 2
        for writer in list(self._writers):
            self._abort(writer)
        self.dropped += clients
        return clients

    async def _shutdown(self) -> int:
        if self._server is not None:
            self._server.close()
        return await self._drop_all()

    def _abort(self, writer: asyncio.StreamWriter) -> None:
        self._writers.discard(writer)
        writer.transport.abort()

    async def _serve(
        self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        self.accepted += 1
        try:
            upstream_reader, upstream = await asyncio.open_connection(*self.target)
        except OSError:
            client.transport.abort()
            return
        self._writers.update((client, upstream))
        pipes = [
            asyncio.ensure_future(self._pipe(client_reader, upstream)),
            asyncio.ensure_future(self._pipe(upstream_reader, client)),
        ]
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for pipe in pipes:
            pipe.cancel()
        for writer in (client, upstream):
            self._abort(writer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy until EOF or error; chunks keep their order whatever the latency."""
        chunks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        sender = asyncio.ensure_future(self._send(chunks, writer))
        try:
            while not sender.done():
                data = await reader.read(CHUNK)
                if not data:
                    break
                await chunks.put((time.monotonic() + self.latency, data))
            await chunks.put((0.0, b""))
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await sender
        except ConnectionError:
            pass
        finally:
            sender.cancel()

    async def _send(
        self, chunks: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter
    ) -> None:
        while True:
            due, data = await chunks.get()
            if not data:
                return
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            await asyncio.sleep(self.throttle.delay(len(data), time.monotonic()))
            writer.write(data)
            await writer.drain()
