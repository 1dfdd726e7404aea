"""History for polling clients: a user's events after a cursor, as JSON pages.

Where Redis no longer holds the gap (the cursor is older than the retention, or Redis lost the
stream), the page starts with the important events after the cursor from the SQL archive.
"""

from __future__ import annotations

from collections.abc import Set
from typing import Any

import orjson
from pydantic import BaseModel

from api.auth.authz import Authorizer
from api.auth.tokens import Principal
from api.event_meta import event_meta
from api.stream.archive import Archive
from api.stream.connection import merge_by_stream_id
from api.stream.delivery import CHECK, NO_IDS, SEND, decide
from progress.cursor import (
    ZERO_ID,
    Cursor,
    Resume,
    StreamPosition,
    decide_resume,
    id_after,
    parse_stream_id,
)
from progress.keys import BROADCAST, user_stream
from progress.redis_store import AsyncRedisEventStore
from progress.store import StoredEvent


class HistoryPage(BaseModel):
    """Events after the cursor (oldest first), the cursor to continue from, and flags."""

    events: list[dict[str, Any]]
    cursor: str
    reset: bool
    has_more: bool


async def _archived(
    archive: Archive | None, stream: str, position: StreamPosition, limit: int
) -> list[tuple[str, str | None, bytes]] | None:
    if archive is None:
        return None
    found = await archive.replay(stream, position.last_id, limit)
    return None if found is None else [(stream, id_, data) for id_, data in found]


async def read_history(
    store: AsyncRedisEventStore,
    authorizer: Authorizer,
    principal: Principal,
    since: Cursor | None,
    limit: int,
    archive: Archive | None = None,
) -> HistoryPage:
    """Up to ``limit`` events the user may see after ``since`` (from the oldest kept if None).

    ``reset`` is true when part of the gap was lost from Redis (the cursor is older than the
    retention or its epoch is gone). The page then starts with the important events after the
    cursor kept in the SQL archive (``archive``), then what Redis holds. When the archive
    alone fills the page, the cursor stays in the old epoch, at the last archived event, so
    the next page continues the archive.
    """
    cursor = Cursor({})
    candidates: list[StoredEvent] = []
    archived: list[tuple[str, str | None, bytes]] = []
    reset = False
    for stream in (user_stream(principal.user_id), BROADCAST):
        state = await store.stream_state(stream)
        position = since.positions.get(stream) if since else None
        after = ZERO_ID
        if decide_resume(position, state) is Resume.REPLAY and position is not None:
            after = position.last_id
        elif position is not None:
            reset = True
            found = await _archived(archive, stream, position, limit + 1)
            if found is not None:
                archived += found
                if position.epoch == state.epoch:
                    later = id_after(state.last_id, position.last_id)
                    after = position.last_id if later else state.last_id
        cursor = cursor.advance(stream, state.epoch, after)
        candidates += await store.read_after(stream, after, limit + 1)
    if len(archived) > limit:
        return await _archive_page(authorizer, principal, since, archived[:limit])
    candidates.sort(key=lambda item: parse_stream_id(item.id))
    page = candidates[: limit - len(archived)]
    # An archived event Redis also holds comes from Redis, on whichever page it falls.
    in_store = {event_meta(item.data).event_id for item in candidates} if archived else set()
    kept = [(id_, data) for _, id_, data in archived if event_meta(data).event_id not in in_store]
    merged = merge_by_stream_id(kept, page)
    from_archive = {event_meta(item).event_id for item in merged if isinstance(item, bytes)}
    events: list[dict[str, Any]] = []
    for item in merged:
        if isinstance(item, bytes):
            events += await _visible(authorizer, principal, [item])
            continue
        cursor = cursor.advance(item.stream, item.epoch, item.id)
        events += await _visible(authorizer, principal, [item.data], from_archive)
    return HistoryPage(
        events=events,
        cursor=cursor.format(),
        reset=reset,
        has_more=len(candidates) > len(page),
    )


async def _archive_page(
    authorizer: Authorizer,
    principal: Principal,
    since: Cursor | None,
    archived: list[tuple[str, str | None, bytes]],
) -> HistoryPage:
    assert since is not None
    cursor = since
    for stream, stream_id, _ in archived:
        if stream_id is not None:
            cursor = cursor.advance(stream, since.positions[stream].epoch, stream_id)
    events = await _visible(authorizer, principal, [data for _, _, data in archived])
    return HistoryPage(events=events, cursor=cursor.format(), reset=True, has_more=True)


async def _visible(
    authorizer: Authorizer,
    principal: Principal,
    items: list[bytes],
    sent_from_archive: Set[str] = NO_IDS,
) -> list[dict[str, Any]]:
    """The events of ``items`` the caller may see, as the stream decides (``api.stream.delivery``),
    except that preferences do not apply here; events already on the page from the archive
    (``sent_from_archive``) are left out."""
    visible = []
    user_id, session_id = principal.user_id, principal.session_id
    for data in items:
        meta = event_meta(data)
        verdict = decide(meta, session_id, authorizer.known(user_id, meta), None, sent_from_archive)
        if verdict is CHECK:
            allowed = await authorizer.may_receive(user_id, meta)
            verdict = decide(meta, session_id, allowed, None, sent_from_archive)
        if verdict is SEND:
            visible.append(orjson.loads(data))
    return visible
