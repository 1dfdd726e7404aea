"""The catch-up's shortcuts give exactly what the plain cursor and parse give."""

from __future__ import annotations

from api.event_meta import EventMeta, event_meta
from api.stream.replay_frames import CursorText, MetaCache
from progress.cursor import Cursor, StreamPosition


def test_cursor_text_matches_the_cursor_after_every_event() -> None:
    start = Cursor({"u:ann": StreamPosition("e1", "5-0")})
    moves = [
        ("b", "e2", "7-0"),
        ("b", "e2", "7-1"),
        ("u:ann", "e1", "8-0"),
        ("b", "e2", "9-0"),
        ("u:ann", "e3", "1-0"),  # a new epoch of the same stream
    ]
    text = CursorText(start)
    expected = start
    assert text.text() == expected.format()
    for stream, epoch, stream_id in moves:
        text.advance(stream, epoch, stream_id)
        expected = expected.advance(stream, epoch, stream_id)
        assert text.text() == expected.format()
    assert text.cursor == expected
    assert Cursor.parse(text.text()) == expected


def test_meta_cache_parses_each_event_once_and_stays_bounded() -> None:
    parsed: list[bytes] = []

    def parse(data: bytes) -> EventMeta:
        parsed.append(data)
        return event_meta(data)

    cache = MetaCache(parse, size=2)
    first = b'{"type":"system.notification","audience":"broadcast","level":"info"}'
    second = b'{"type":"task.started","user_id":"ann","task_id":"t1"}'
    assert cache(first) == event_meta(first)
    assert cache(first) is cache(first)
    assert cache(second).task_id == "t1"
    assert parsed == [first, second]
    cache(b'{"type":"task.completed","user_id":"ann","task_id":"t1"}')  # over size: starts over
    cache(first)
    assert parsed.count(first) == 2
