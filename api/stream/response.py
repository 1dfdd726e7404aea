"""A lean ASGI response for the event stream, and the watch that ends streams on shutdown.

sse-starlette's ``EventSourceResponse`` runs an anyio task group of four tasks per stream
(sender, disconnect listener, exit-signal listener, supervisor wrappers) and an anyio cancel
scope per write. At thousands of streams that was most of the per-stream memory (about 48 KiB)
and a large share of the accept cost. ``SseStream`` keeps the same behaviour with one extra
task per stream, the disconnect listener, which ASGI needs because only ``receive()`` reports
a vanished client:

- the response head (``text/event-stream``, the headers given), then each frame as it comes;
- a write that does not finish within ``send_timeout`` ends the stream (a stuck client): the
  one process-wide :func:`supervise_streams` loop finds such writes, so a write costs two
  dict stores instead of a timer armed and cancelled per frame;
- a client that disconnects ends the stream at once (its frames generator is closed, so its
  cleanup runs: detach from the hub, release the lease);
- HEAD gets the head and an empty body, never a stream.

Frames of live events usually skip all of that: while a stream's task is parked waiting for
events, the hub writes the next event's frame at once through the server's own ASGI ``send``
(the stream's :class:`DirectWriter`, see ``Connection.offer``): no queue, no wake-up of the
stream's task, no middleware wrappers; the task only wakes for what needs it (heartbeats,
control signals, a socket that stopped taking data).

Shutdown is watched by the same loop, once per process, not once per stream: when the process
gets SIGTERM or SIGINT (:class:`ExitSignals` notes it, then hands it on to the server's own
handler), ``shutdown_event`` is set (the app then sends ``server.restart`` to every stream)
and streams still open after ``grace`` seconds are cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import threading
import types
from collections.abc import AsyncIterator, Awaitable, Coroutine, Generator, Mapping
from contextvars import ContextVar
from types import FrameType
from typing import Any

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

_MEDIA_TYPE = "text/event-stream"

#: Scope key under which :class:`api.main.RealtimeApp` keeps the server's own ``send``, before
#: the middleware wrap it (their wrappers cost more than the write itself).
SERVER_SEND = "realtime.server_send"

#: The writer of the response being streamed by the current task (None outside such a task).
current_writer: ContextVar[DirectWriter | None] = ContextVar("current_writer", default=None)


class DirectWriter:
    """Writes frames of one streaming response through the server's own ASGI ``send``, run at
    once in the caller instead of in the stream's task.

    A server's ``send`` of a body chunk writes to the socket and returns without suspending
    unless the socket stopped taking data (uvicorn waits for its flow control first). So the
    coroutine is stepped here by hand; only when it suspends does the rest of it go to a task
    of its own, and the writer stays busy (not :attr:`writable`) until that task has finished:
    frames keep their order. Callers must write only while no other ``send`` of the same
    response is under way, and the stream's task calls :meth:`settle` before its own sends.
    """

    __slots__ = ("_busy", "_send")

    def __init__(self, send: Send) -> None:
        self._send = send
        self._busy: asyncio.Task[None] | None = None

    @property
    def writable(self) -> bool:
        """False while an earlier frame still waits for the socket."""
        return self._busy is None or self._busy.done()

    def write(self, data: bytes) -> None:
        """Send ``data`` as one body chunk, at once when the socket takes it.

        A socket that breaks under the write loses the frame like any frame in flight: the
        stream ends when the server notices, and the client resumes from its own cursor.
        """
        sending = self._send({"type": "http.response.body", "body": data, "more_body": True})
        if not isinstance(sending, Coroutine):  # a server whose send is some other awaitable
            self._busy = asyncio.ensure_future(_finish(sending, None))
            return
        try:
            waiting_for = sending.send(None)
        except StopIteration:
            return
        except (OSError, RuntimeError):
            return
        self._busy = asyncio.ensure_future(_finish(sending, waiting_for))

    async def settle(self) -> None:
        """Wait until a frame that had to wait for the socket has been written."""
        busy = self._busy
        if busy is not None:
            self._busy = None
            await busy

    def close(self) -> None:
        """Abandon a frame still waiting for the socket (the stream is ending)."""
        if self._busy is not None:
            self._busy.cancel()
            self._busy = None


@types.coroutine
def _resume(sending: Coroutine[Any, Any, None], waiting_for: Any) -> Generator[Any, Any, None]:
    """The rest of ``sending``, which suspended on ``waiting_for``: the awaiting task waits
    for that first, then runs ``sending`` on as if it had awaited it from the start."""
    try:
        yield waiting_for
    except BaseException:
        sending.close()
        raise
    yield from sending


async def _finish(sending: Awaitable[None], waiting_for: Any) -> None:
    """Run the rest of ``sending`` (not yet started when ``waiting_for`` is None)."""
    with contextlib.suppress(OSError, RuntimeError):  # a broken socket: as in write()
        if isinstance(sending, Coroutine) and waiting_for is not None:
            await _resume(sending, waiting_for)
        else:
            await sending


class OpenStreams:
    """The tasks writing streams, and the writes in progress (task -> loop time it began).

    Only writes in progress are in ``writing`` (almost always none: a write to a healthy
    socket completes at once), so the stuck-write sweep costs nothing per idle stream.
    """

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()
        self.writing: dict[asyncio.Task[None], float] = {}
        self.timed_out: set[asyncio.Task[None]] = set()
        #: Streams whose client disconnected (their cancellation is a normal end).
        self.gone: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self.tasks)

    def cancel_stuck(self, now: float, send_timeout: float) -> None:
        """Cancel every stream whose current write began more than ``send_timeout`` ago."""
        for task, began in list(self.writing.items()):
            if now - began > send_timeout and task not in self.timed_out:
                self.timed_out.add(task)
                task.cancel()

    def cancel_all(self) -> None:
        for task in list(self.tasks):
            task.cancel()


@functools.lru_cache(maxsize=32)
def _response_head(headers: tuple[tuple[str, str], ...]) -> tuple[tuple[bytes, bytes], ...]:
    """The header pairs of a stream response, built once for every stream with these headers
    (Starlette builds about ten objects per response)."""
    pairs = (
        ("connection", "keep-alive"),
        *headers,
        ("content-type", f"{_MEDIA_TYPE}; charset=utf-8"),
    )
    return tuple((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in pairs)


class SseStream(Response):
    """Streams ``frames`` (ready-made SSE bytes) to one client."""

    media_type = _MEDIA_TYPE

    def __init__(
        self, frames: AsyncIterator[bytes], headers: Mapping[str, str], streams: OpenStreams
    ) -> None:
        self.frames = frames
        self.status_code = 200
        self.background = None
        self.streams = streams
        self.head = _response_head(tuple(headers.items()))

    @property
    def raw_headers(self) -> list[tuple[bytes, bytes]]:  # type: ignore[override]
        """A fresh list (middleware may edit it) of the shared header pairs."""
        return list(self.head)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
        if scope["method"] == "HEAD":
            await send(start)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            await self._close_frames()
            return
        task: asyncio.Task[None] = asyncio.current_task()  # type: ignore[assignment]
        loop = asyncio.get_running_loop()
        listener = loop.create_task(_until_disconnect(receive, task, self.streams.gone))
        writing = self.streams.writing
        self.streams.tasks.add(task)
        writer: DirectWriter | None = None
        try:
            writing[task] = loop.time()
            await send(start)
            del writing[task]
            writer = DirectWriter(scope.get(SERVER_SEND, send))
            current_writer.set(writer)
            async for frame in self.frames:
                if writer.writable:
                    # the frames of an open (established, the replayed gap) and heartbeats
                    # skip the send chain too
                    writer.write(frame)
                    continue
                writing[task] = loop.time()
                await writer.settle()
                await send({"type": "http.response.body", "body": frame, "more_body": True})
                del writing[task]
            writing[task] = loop.time()
            await writer.settle()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if task not in self.streams.gone and task not in self.streams.timed_out:
                raise  # cancelled from outside (shutdown grace over, server stopping)
            # the client went away, or a write stuck for send_timeout (the client resumes
            # from its cursor later): a normal end of a stream
            task.uncancel()
        except OSError:
            pass  # the socket broke under a write
        finally:
            if writer is not None:
                writer.close()
            writing.pop(task, None)
            self.streams.tasks.discard(task)
            self.streams.timed_out.discard(task)
            self.streams.gone.discard(task)
            listener.cancel()
            await self._close_frames()

    async def _close_frames(self) -> None:
        aclose = getattr(self.frames, "aclose", None)
        if aclose is not None:
            with anyio.CancelScope(shield=True):
                await aclose()


async def _until_disconnect(
    receive: Receive, stream: asyncio.Task[None], gone: set[asyncio.Task[None]]
) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.add(stream)
            stream.cancel()
            return


_EXIT_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class ExitSignals:
    """Notes SIGTERM and SIGINT, then hands each on to the handler installed before (the
    server's: uvicorn begins its graceful exit there, and only then waits for open streams).

    The server's own exit flag is not public, and its lifespan shutdown comes only after every
    stream has ended: the signal is the first public sign of an exit.
    """

    def __init__(self) -> None:
        self.received = False
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        """Wrap the current handlers (signals can be handled in the main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in _EXIT_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        """Put the previous handlers back where ours is still the one installed."""
        for sig, previous in self._previous.items():
            if signal.getsignal(sig) == self._handle:
                signal.signal(sig, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = True
        previous = self._previous.get(signum)
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:  # no server handles it: its default, end the process
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)


async def supervise_streams(
    shutdown_event: anyio.Event,
    streams: OpenStreams,
    send_timeout: float,
    grace: float = 1.0,
    poll: float = 0.25,
) -> None:
    """Run for the app's life: end streams whose write is stuck for ``send_timeout``; once the
    process is told to exit (SIGTERM, SIGINT) set ``shutdown_event``, and cancel streams left
    after ``grace`` s (they had their ``server.restart``; a stuck one must not hold the exit)."""
    loop = asyncio.get_running_loop()
    signals = ExitSignals()
    signals.install()
    try:
        while not signals.received and not shutdown_event.is_set():
            await asyncio.sleep(poll)
            streams.cancel_stuck(loop.time(), send_timeout)
        shutdown_event.set()
        await asyncio.sleep(grace)
        streams.cancel_all()
    finally:
        signals.uninstall()
