"""A lean ASGI response for the event stream, and the watch that ends streams on shutdown.

sse-starlette's ``EventSourceResponse`` runs an anyio task group of four tasks per stream
(sender, disconnect listener, exit-signal listener, supervisor wrappers) and an anyio cancel
scope per write. At thousands of streams that was most of the per-stream memory (about 48 KiB)
and a large share of the accept cost. ``SseStream`` keeps the same behaviour with one extra
task per stream, the disconnect listener, which ASGI needs because only ``receive()`` reports
a vanished client:

- the response head (``text/event-stream``, the headers given), then each frame as it comes;
- a write that does not finish within ``send_timeout`` ends the stream (a stuck client);
- a client that disconnects ends the stream at once (its frames generator is closed, so its
  cleanup runs: detach from the hub, release the lease);
- HEAD gets the head and an empty body, never a stream.

Shutdown is watched once per process (:func:`watch_server_exit`), not once per stream: when
uvicorn begins to exit, ``shutdown_event`` is set (the app then sends ``server.restart`` to
every stream) and streams still open after ``grace`` seconds are cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Mapping

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

try:  # importing sse_starlette hooks uvicorn's exit handler; reuse its flag when present
    from sse_starlette.sse import AppStatus
except ImportError:  # pragma: no cover - sse-starlette is a dependency
    AppStatus = None  # type: ignore[assignment,misc]

_MEDIA_TYPE = "text/event-stream"


class SseStream(Response):
    """Streams ``frames`` (ready-made SSE bytes) to one client."""

    media_type = _MEDIA_TYPE

    def __init__(
        self,
        frames: AsyncIterator[bytes],
        headers: Mapping[str, str],
        send_timeout: float,
        open_streams: set[asyncio.Task[object]],
    ) -> None:
        self.frames = frames
        self.status_code = 200
        self.background = None
        self.send_timeout = send_timeout
        self.open_streams = open_streams
        self.init_headers({"Connection": "keep-alive", **headers})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
        if scope["method"] == "HEAD":
            await send(start)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            await self._close_frames()
            return
        task = asyncio.current_task()
        assert task is not None
        gone = asyncio.Event()
        listener = asyncio.get_running_loop().create_task(_until_disconnect(receive, task, gone))
        self.open_streams.add(task)
        try:
            async with asyncio.timeout(self.send_timeout):
                await send(start)
            async for frame in self.frames:
                async with asyncio.timeout(self.send_timeout):
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
            async with asyncio.timeout(self.send_timeout):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not gone.is_set():
                raise  # cancelled from outside (shutdown grace over, server stopping)
            # the client went away: a normal end of a stream
            task.uncancel()
        except TimeoutError:
            pass  # a write stuck for send_timeout: the client resumes from its cursor later
        except OSError:
            pass  # the socket broke under a write
        finally:
            self.open_streams.discard(task)
            listener.cancel()
            await self._close_frames()

    async def _close_frames(self) -> None:
        aclose = getattr(self.frames, "aclose", None)
        if aclose is not None:
            with anyio.CancelScope(shield=True):
                await aclose()


async def _until_disconnect(
    receive: Receive, stream: asyncio.Task[object], gone: asyncio.Event
) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            stream.cancel()
            return


def _uvicorn_exiting() -> bool:
    if AppStatus is not None and AppStatus.should_exit:
        return True
    handler = signal.getsignal(signal.SIGTERM)
    server = getattr(handler, "__self__", None)
    return bool(getattr(server, "should_exit", False))


async def watch_server_exit(
    shutdown_event: anyio.Event,
    open_streams: set[asyncio.Task[object]],
    grace: float = 1.0,
    poll: float = 0.5,
) -> None:
    """Set ``shutdown_event`` once the server begins to exit; cancel streams left after
    ``grace`` seconds (they had their ``server.restart``; a stuck one must not hold the exit)."""
    while not _uvicorn_exiting() and not shutdown_event.is_set():
        await asyncio.sleep(poll)
    shutdown_event.set()
    await asyncio.sleep(grace)
    for task in list(open_streams):
        with contextlib.suppress(RuntimeError):
            task.cancel()
