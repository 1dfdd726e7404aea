"""The naive design, for comparison only: one blocking ``XREAD`` per SSE connection.

    uvicorn bench.naive_app:app   (REDIS_URL, PROGRESS_KEY_PREFIX from the environment)

``GET /stream?user=<id>`` answers ``connection.established``, then loops on
``XREAD BLOCK`` over the user's stream and the broadcast stream, on a Redis connection of its
own (what the common Python pattern does: one per browser), and writes every entry as an SSE
message (``id: <user id>,<broadcast id>``, ``event: <type>``, ``data: <event JSON>``). A
``Last-Event-ID`` (header or ``last_event_id`` query) resumes after those ids. No token, no
lease, no authorization: it is the lower bound of that design's cost, not a product.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import orjson
import redis.asyncio
from fastapi import FastAPI, Header, Query
from sse_starlette import EventSourceResponse

from progress.keys import BROADCAST, KeyLayout, user_stream

app = FastAPI()
_LAYOUT = KeyLayout(os.environ.get("PROGRESS_KEY_PREFIX", "rt"))
_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


async def _entries(user: str, resume: str | None) -> AsyncIterator[bytes]:
    own, shared = _LAYOUT.events(user_stream(user)), _LAYOUT.events(BROADCAST)
    # socket_timeout=None: redis-py's default (5 s) would end every stream on its first
    # XREAD BLOCK that waits longer than that
    client = redis.asyncio.Redis.from_url(_URL, single_connection_client=True, socket_timeout=None)
    try:
        if resume:
            ids = dict(zip((own, shared), resume.split(",", 1), strict=True))
        else:
            ids = {key: await _last_id(client, key) for key in (own, shared)}
        yield b"event: connection.established\ndata: {}\n\n"
        while True:
            reply = await client.xread(ids, block=15000, count=500)  # type: ignore[arg-type]
            if not reply:
                yield b": keep-alive\n\n"
                continue
            frames = []
            for key, entries in reply:
                for entry_id, fields in entries:
                    ids[key.decode()] = entry_id.decode()
                    data = fields[b"e"]
                    kind = orjson.loads(data)["type"].encode()
                    cursor = f"{ids[own]},{ids[shared]}".encode()
                    frames.append(b"id: " + cursor + b"\nevent: " + kind + b"\ndata: " + data)
            yield b"\n\n".join(frames) + b"\n\n"
    finally:
        await client.aclose()


async def _last_id(client: redis.asyncio.Redis, key: str) -> str:
    last = await client.xrevrange(key, count=1)
    return last[0][0].decode() if last else "0-0"


@app.get("/stream")
async def stream(
    user: str,
    last_event_id: str | None = Query(default=None),
    last_event_id_header: str | None = Header(default=None, alias="Last-Event-ID"),
) -> EventSourceResponse:
    """The naive stream: one Redis connection and one blocking read loop per client."""
    return EventSourceResponse(_entries(user, last_event_id_header or last_event_id), ping=0)


@app.get("/health")
async def health() -> dict[str, str]:
    """Liveness for the benchmark's start-up wait."""
    return {"status": "ok"}
