"""Issue 2/3: cursors parse strictly and the resume decision is right in every case."""

from __future__ import annotations

import pytest

from progress.cursor import (
    Cursor,
    Resume,
    StreamPosition,
    StreamState,
    decide_resume,
    id_after,
)
from progress.errors import InvalidCursor

pytestmark = pytest.mark.unit


def test_cursor_round_trips_with_dotted_user_ids() -> None:
    cursor = Cursor({"u:ann.lee@x": StreamPosition("ab12", "17-3"), "b": StreamPosition("ff")})

    assert Cursor.parse(cursor.format()) == cursor


def test_advance_moves_one_stream_only() -> None:
    cursor = Cursor({"u:a": StreamPosition("e1", "5-0"), "b": StreamPosition("e2", "7-0")})

    moved = cursor.advance("u:a", "e1", "9-0")

    assert moved.positions["u:a"] == StreamPosition("e1", "9-0")
    assert moved.positions["b"] == StreamPosition("e2", "7-0")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "v1",
        "v2,b~ff~1-0",
        "v1,b~ff",
        "v1,x:1~ff~1-0",
        "v1,b~XYZ~1-0",
        "v1,b~ff~1",
        "v1,b~ff~a-b",
        "v1,u:{a}~ff~1-0",
        "v1," + "b~ff~1-0," * 100,
    ],
)
def test_malformed_cursors_are_refused(value: str) -> None:
    with pytest.raises(InvalidCursor):
        Cursor.parse(value)


def test_stream_ids_compare_numerically() -> None:
    assert id_after("10-0", "9-5")
    assert id_after("9-10", "9-9")
    assert not id_after("9-9", "9-9")


STATE = StreamState(epoch="e1", last_id="100-0", trimmed_before="50-0")


@pytest.mark.parametrize(
    ("position", "expected"),
    [
        (None, Resume.LIVE),
        (StreamPosition("e1", "100-0"), Resume.REPLAY),
        (StreamPosition("e1", "70-0"), Resume.REPLAY),
        (StreamPosition("e1", "50-0"), Resume.REPLAY),
        (StreamPosition("e1", "49-9"), Resume.RESET),
        (StreamPosition("e1", "0-0"), Resume.RESET),
        (StreamPosition("e2", "70-0"), Resume.RESET),
        (StreamPosition("e1", "101-0"), Resume.RESET),
    ],
)
def test_resume_decision(position: StreamPosition | None, expected: Resume) -> None:
    assert decide_resume(position, STATE) is expected


def test_untrimmed_stream_replays_from_the_beginning() -> None:
    fresh = StreamState(epoch="e1", last_id="5-0")
    assert decide_resume(StreamPosition("e1", "0-0"), fresh) is Resume.REPLAY
