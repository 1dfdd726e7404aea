"""Stream ids, the resume cursor, and the pure resume decision.

A connection follows several streams (its user's and the broadcast stream). Its cursor, sent as
the SSE ``id:``, records for each the stream's epoch and the last id delivered::

    v1,<stream>~<epoch>~<id>,<stream>~<epoch>~<id>

Clients treat it as opaque. The epoch changes when a stream's history is lost (Redis flushed,
failed over to an empty replica, or the stream expired), so a stale cursor is detected instead of
silently skipping events.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from progress.errors import InvalidCursor

_STREAM_ID = re.compile(r"^(\d{1,20})-(\d{1,20})$")
_STREAM_NAME = re.compile(r"^(b|u:[A-Za-z0-9_.@-]{1,64})$")
_EPOCH = re.compile(r"^[0-9a-f]{1,32}$")
_VERSION = "v1"

ZERO_ID = "0-0"


def parse_stream_id(value: str) -> tuple[int, int]:
    """``"1700000000000-3"`` → ``(1700000000000, 3)``; raise InvalidCursor when malformed."""
    match = _STREAM_ID.match(value)
    if match is None:
        raise InvalidCursor(f"not a stream id: {value!r}")
    return int(match[1]), int(match[2])


# The relay compares every live event's id with each recipient's cursor: a broadcast's id is
# parsed once for all of them, and a cursor's id was the previous event's.
_cached_stream_id = functools.lru_cache(maxsize=4096)(parse_stream_id)


def id_after(a: str, b: str) -> bool:
    """True when stream id ``a`` comes strictly after ``b``."""
    return _cached_stream_id(a) > _cached_stream_id(b)


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """Where a reader stands in one stream: its epoch and the last id it has."""

    epoch: str
    last_id: str = ZERO_ID


@dataclass(frozen=True, slots=True)
class Cursor:
    """Positions in every stream a connection follows, keyed by stream name."""

    positions: Mapping[str, StreamPosition]

    def advance(self, stream: str, epoch: str, stream_id: str) -> Cursor:
        """The cursor after delivering ``stream_id`` of ``stream``."""
        positions = dict(self.positions)
        positions[stream] = StreamPosition(epoch, stream_id)
        return Cursor(positions)

    def format(self) -> str:
        """The opaque string sent as the SSE ``id:``."""
        parts = [f"{name}~{pos.epoch}~{pos.last_id}" for name, pos in self.positions.items()]
        return ",".join((_VERSION, *parts))

    @classmethod
    def parse(cls, value: str) -> Cursor:
        """Inverse of :meth:`format`; raise InvalidCursor saying what is wrong."""
        if len(value) > 512:
            raise InvalidCursor("cursor too long")
        version, *parts = value.split(",")
        if version != _VERSION or not parts:
            raise InvalidCursor("unknown cursor format")
        positions: dict[str, StreamPosition] = {}
        for part in parts:
            fields = part.split("~")
            if len(fields) != 3:
                raise InvalidCursor(f"malformed cursor part: {part!r}")
            name, epoch, stream_id = fields
            if not _STREAM_NAME.match(name) or not _EPOCH.match(epoch):
                raise InvalidCursor(f"malformed cursor part: {part!r}")
            parse_stream_id(stream_id)
            positions[name] = StreamPosition(epoch, stream_id)
        return cls(positions)


class Resume(Enum):
    """What to do with a stream when a connection resumes."""

    REPLAY = "replay"  # read the gap after the cursor's id, then go live
    RESET = "reset"  # the gap is lost: tell the client to refresh its state
    LIVE = "live"  # nothing to replay: the stream is new to this cursor


@dataclass(frozen=True, slots=True)
class StreamState:
    """What the store says about a stream now."""

    epoch: str
    last_id: str = ZERO_ID
    trimmed_before: str | None = None  # entries older than this id may have been removed


def decide_resume(position: StreamPosition | None, state: StreamState) -> Resume:
    """Replay, reset or go live for one stream, given the cursor's position and the store."""
    if position is None:
        return Resume.LIVE
    if position.epoch != state.epoch:
        return Resume.RESET
    if id_after(position.last_id, state.last_id):
        return Resume.RESET  # the cursor claims events this store never had
    if state.trimmed_before is not None and id_after(state.trimmed_before, position.last_id):
        return Resume.RESET
    return Resume.REPLAY
