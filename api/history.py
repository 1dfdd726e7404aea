"""History for polling clients: a user's events after a cursor, as JSON pages."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel

from api.authz import Authorizer
from api.connection import event_meta
from api.security import Principal
from progress.cursor import ZERO_ID, Cursor, Resume, decide_resume, parse_stream_id
from progress.keys import BROADCAST, user_stream
from progress.redis_store import AsyncRedisEventStore
from progress.store import StoredEvent


class HistoryPage(BaseModel):
    """Events after the cursor (oldest first), the cursor to continue from, and flags."""

    events: list[dict[str, Any]]
    cursor: str
    reset: bool
    has_more: bool


async def read_history(
    store: AsyncRedisEventStore,
    authorizer: Authorizer,
    principal: Principal,
    since: Cursor | None,
    limit: int,
) -> HistoryPage:
    """Up to ``limit`` events the user may see after ``since`` (from the oldest kept if None).

    ``reset`` is true when part of the gap was lost (the cursor is older than the retention or
    its epoch is gone): the page then starts at the oldest event still kept.
    """
    cursor = Cursor({})
    candidates: list[StoredEvent] = []
    reset = False
    for stream in (user_stream(principal.user_id), BROADCAST):
        state = await store.stream_state(stream)
        position = since.positions.get(stream) if since else None
        after = ZERO_ID
        if decide_resume(position, state) is Resume.REPLAY and position is not None:
            after = position.last_id
        elif position is not None:
            reset = True
        cursor = cursor.advance(stream, state.epoch, after)
        candidates += await store.read_after(stream, after, limit + 1)
    candidates.sort(key=lambda item: parse_stream_id(item.id))
    page = candidates[:limit]
    events = []
    for item in page:
        cursor = cursor.advance(item.stream, item.epoch, item.id)
        meta = event_meta(item.data)
        if meta.audience == "session" and meta.session_id != principal.session_id:
            continue
        if await authorizer.may_receive(principal.user_id, meta):
            events.append(orjson.loads(item.data))
    return HistoryPage(
        events=events, cursor=cursor.format(), reset=reset, has_more=len(candidates) > limit
    )
