"""The HTTP layer's floor, for comparison only: what uvicorn (uvloop + httptools) costs to
accept a connection and answer a stream head, with nothing behind it.

    uvicorn bench.floor_app:app

Any ``GET`` answers ``200 text/event-stream`` with one ``connection.established`` frame and
holds the stream until the client goes; ``/health`` answers ``200``. No token, no Redis, no
lease, no authorization, no catch-up: the API's CPU per open minus this is what our own open
path costs (issue 20).
"""

from __future__ import annotations

from typing import Any

_HEAD = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),
]
_ESTABLISHED = b"event: connection.established\ndata: {}\n\n"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A bare ASGI app: a stream head and one frame, then wait for the disconnect."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/health":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": _HEAD})
    await send({"type": "http.response.body", "body": _ESTABLISHED, "more_body": True})
    while (await receive())["type"] != "http.disconnect":
        pass
