"""The routing fields of an event (``EventMeta``), parsed once per message (``event_meta``).

The one view of an event that every part reads: the hub routes by it, a stream decides with it
(``api.stream.delivery``), authorization (``api.auth.authz``) and preferences
(``api.preferences``) judge it, metrics count it (``api.ops.metrics``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import orjson


@dataclass(frozen=True, slots=True)
class EventMeta:
    """The routing fields of an event, parsed once per message."""

    type: str
    user_id: str | None
    session_id: str | None
    audience: str
    task_id: str | None
    novel_id: str | None
    #: Epoch seconds of ``occurred_at`` (delivery latency), None when absent.
    occurred_at: float | None = None
    #: ``level`` of a system.notification, ``severity`` of a system.error.
    level: str | None = None
    #: The event's ``event_id``: an event sent from the SQL archive is not sent again.
    event_id: str = ""


def event_meta(data: bytes) -> EventMeta:
    """Parse the routing fields of an event's JSON."""
    raw = orjson.loads(data)
    return EventMeta(
        type=raw["type"],
        user_id=raw.get("user_id"),
        session_id=raw.get("session_id"),
        audience=raw.get("audience", "user"),
        task_id=raw.get("task_id"),
        novel_id=raw.get("novel_id"),
        occurred_at=_epoch(raw.get("occurred_at")),
        level=raw.get("level") or raw.get("severity"),
        event_id=str(raw.get("event_id", "")),
    )


def _epoch(iso: str | None) -> float | None:
    try:
        return datetime.fromisoformat(iso).timestamp() if iso else None
    except ValueError:
        return None
