"""How a catch-up after a lost history merges the SQL archive with what Redis holds now
(``api.stream.connection.merge_by_stream_id``, also used by ``/events/history``)."""

from __future__ import annotations

import orjson
import pytest

from api.stream.connection import merge_by_stream_id
from progress.store import StoredEvent

pytestmark = pytest.mark.unit


def event(event_id: str) -> bytes:
    return orjson.dumps({"type": "task.progress-completed", "event_id": event_id, "user_id": "u"})


def stored(stream_id: str, event_id: str) -> StoredEvent:
    return StoredEvent("u:u", "new-epoch", stream_id, event(event_id))


def ids(merged: list[bytes | StoredEvent]) -> list[tuple[str, str]]:
    return [
        ("archive", orjson.loads(item)["event_id"])
        if isinstance(item, bytes)
        else ("store", orjson.loads(item.data)["event_id"])
        for item in merged
    ]


def test_archived_and_stored_events_come_in_stream_id_order_never_pushed_last() -> None:
    archived = [("100-0", event("a")), (None, event("never")), ("300-0", event("c"))]
    merged = merge_by_stream_id(archived, [stored("200-0", "b"), stored("400-0", "d")])

    assert ids(merged) == [
        ("archive", "a"),
        ("store", "b"),
        ("archive", "c"),
        ("store", "d"),
        ("archive", "never"),
    ]


def test_an_event_in_both_comes_once_from_the_store_where_it_now_stands() -> None:
    # The journal has no stream id for "retried" yet (its push was unanswered when Redis lost
    # its data); the retry stored it in the new history before "later".
    archived = [("100-0", event("a")), (None, event("retried")), ("500-0", event("moved"))]
    merged = merge_by_stream_id(
        archived, [stored("200-0", "retried"), stored("300-0", "later"), stored("500-0", "moved")]
    )

    assert ids(merged) == [
        ("archive", "a"),
        ("store", "retried"),
        ("store", "later"),
        ("store", "moved"),
    ]
