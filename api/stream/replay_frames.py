"""Helpers that keep a catch-up's cost per replayed event small.

A resume storm replays the same broadcast events to thousands of streams (5,000 streams x 100
events). Per event and stream, parsing the event's JSON again and building a ``Cursor`` (and
its text) for the frame's ``id:`` were most of the cost. Here:

- ``MetaCache``: the routing fields of an event, parsed once per process (events are
  immutable, so the parse of their bytes never goes stale);
- ``CursorText``: the cursor's text after each replayed event; a run of events of one stream
  only changes that stream's id, so the text is the same prefix and suffix around it.
"""

from __future__ import annotations

from collections.abc import Callable

from api.event_meta import EventMeta
from progress.cursor import Cursor

#: Never part of a formatted cursor (stream names, epochs and ids are validated text).
_MARK = "\x00"


class MetaCache:
    """``parse(data)``, remembered for the last ``size`` distinct events or so."""

    def __init__(self, parse: Callable[[bytes], EventMeta], size: int = 20_000) -> None:
        self._parse = parse
        self._size = size
        self._metas: dict[bytes, EventMeta] = {}

    def __call__(self, data: bytes) -> EventMeta:
        meta = self._metas.get(data)
        if meta is None:
            if len(self._metas) >= self._size:
                self._metas.clear()
            meta = self._metas[data] = self._parse(data)
        return meta


class CursorText:
    """A cursor advanced event by event, with its text (``Cursor.format``) after each."""

    def __init__(self, cursor: Cursor) -> None:
        self._base = cursor
        self._stream: str | None = None
        self._epoch = ""
        self._last_id = ""
        self._before = self._after = ""

    def advance(self, stream: str, epoch: str, stream_id: str) -> None:
        """Move past ``stream_id`` of ``stream`` (as ``Cursor.advance``)."""
        if stream != self._stream or epoch != self._epoch:
            self._base = self.cursor
            self._stream, self._epoch = stream, epoch
            marked = self._base.advance(stream, epoch, _MARK).format()
            self._before, self._after = marked.split(_MARK)
        self._last_id = stream_id

    def text(self) -> str:
        """``self.cursor.format()``, without building the cursor."""
        if self._stream is None:
            return self._base.format()
        return self._before + self._last_id + self._after

    @property
    def cursor(self) -> Cursor:
        """The cursor after every event advanced past."""
        if self._stream is None:
            return self._base
        return self._base.advance(self._stream, self._epoch, self._last_id)
