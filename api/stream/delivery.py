"""What a connection does with an event it could receive: one pure decision for every path.

The catch-up of a stream (stored and archived events), both live paths of
``api.stream.connection.Connection`` (the hub's direct write and the stream's own task) and
``/events/history`` (``api.stream.history``) all ask :func:`decide`, so the rule of what a client
receives next is written once. It reads nothing but its arguments: no Redis, no clock, no
asyncio, and it allocates nothing (the relay asks it once per event and recipient, up to
40,000 times a second). The rules, in the order they apply:

1. **Duplicate**: the event was already sent from the SQL archive (same ``event_id``), or its
   id is at or below the cursor's in the cursor's epoch → :data:`DUPLICATE` (the cursor stays).
2. **Epoch change**: the cursor knows the stream in another epoch, so the store lost its
   history (flush, failover) → :data:`RESET` (catch up: ``stream.reset``, then the new history).
3. **Session audience**: an event for one session goes only to streams opened with that
   session (a token without ``sid`` gets none) → else :data:`SKIP`.
4. **Preferences**: what the user muted → :data:`SKIP` (critical ones are never muted).
5. **Access**: the authorizer's answer (``api.auth.authz``: own events and broadcasts yes, another
   user's content event if the user may read its novel); refused → :data:`SKIP`; not known
   without reading Redis → :data:`CHECK` (ask it, then decide again with its answer).
6. **Pacing**: a progress update on a stream that asked for ``progress_interval_ms`` →
   :data:`PACE` (the ``UpdatePacer`` sends it now or holds the newest per task); anything
   else → :data:`SEND` (on a paced stream after its task's held update, so a terminal event
   is never held back and a task's events keep their order).

A skipped event is not for this client: it is not sent, but the cursor moves past it.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from enum import IntEnum

from api.event_meta import EventMeta
from api.preferences import NotificationPreferences
from progress.cursor import StreamPosition, id_after


@dataclass(frozen=True, slots=True)
class Delivery:
    """A live event as the hub received it: where it is stored, its routing fields, its JSON."""

    stream: str
    epoch: str
    id: str
    meta: EventMeta
    data: bytes


#: The one event type a pacer may hold or a full queue may drop: a newer one supersedes it.
PROGRESS_UPDATE = "task.progress-updated"


class Verdict(IntEnum):
    """What to do with an event; the module constants below are the same members."""

    DUPLICATE = 0  # already delivered: nothing to do, the cursor stays
    SKIP = 1  # not for this client: not sent, the cursor moves past it
    SEND = 2  # write its frame (on a paced stream, after its task's held update)
    PACE = 3  # a progress update on a paced stream: the pacer sends or holds it
    CHECK = 4  # ask the authorizer (reads Redis), then decide again with its answer
    RESET = 5  # the stream's history was lost: catch up from the cursor, with stream.reset


# Module globals: the relay compares verdicts per recipient, and a global is read about
# 60 ns faster than an enum class attribute.
DUPLICATE = Verdict.DUPLICATE
SKIP = Verdict.SKIP
SEND = Verdict.SEND
PACE = Verdict.PACE
CHECK = Verdict.CHECK
RESET = Verdict.RESET

#: No event ids: where nothing was sent from the archive yet, or the duplicate check is not wanted.
NO_IDS: frozenset[str] = frozenset()


def decide(
    meta: EventMeta,
    session_id: str | None,
    access: bool | None,
    preferences: NotificationPreferences | None = None,
    sent_from_archive: Set[str] = NO_IDS,
    paced: bool = False,
    position: StreamPosition | None = None,
    epoch: str = "",
    stream_id: str = "",
) -> Verdict:
    """What a connection does with an event (rules in the module docstring).

    ``meta``: the event's routing fields. ``session_id``: the connection token's ``sid``.
    ``access``: the authorizer's answer for this user and event, None when it needs I/O.
    ``preferences``: the user's, None where they do not apply (``/events/history``).
    ``sent_from_archive``: ``event_id``s this connection already sent from the SQL archive.
    ``paced``: the stream asked for ``progress_interval_ms``. ``position``: the cursor's
    position in the event's stream, or None where there is nothing to compare (a stream new to
    the cursor, or a catch-up whose gap was read after the cursor); ``epoch`` and
    ``stream_id`` (where the event is stored) are compared with it only.
    """
    if sent_from_archive and meta.event_id in sent_from_archive:
        return DUPLICATE
    if position is not None:
        if position.epoch != epoch:
            return RESET
        if not id_after(stream_id, position.last_id):
            return DUPLICATE
    if meta.audience == "session" and meta.session_id != session_id:
        return SKIP
    if preferences is not None and not preferences.allows(meta):
        return SKIP
    if access is None:
        return CHECK
    if not access:
        return SKIP
    if paced and meta.type == PROGRESS_UPDATE:
        return PACE
    return SEND
