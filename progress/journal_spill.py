"""The spill of the outbox journal in Redis: journal records of important events pushed while
the SQL journal was unreachable, kept until :func:`progress.outbox.drain_spill` writes them.

One hash (``KeyLayout.journal_pending``): event id -> JSON ``{"event", "recipients",
"placements"}``. Keeping a record again replaces it (before the push, then with where it
landed). Its expiry, the store's retention, is renewed on every write: a record that waited
that long is older than anything a client could still resume from. Redis errors become
:class:`progress.errors.StoreUnavailable`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import cast

import orjson
import redis
from redis.typing import EncodableT

from progress.errors import InvalidEvent, StoreUnavailable
from progress.events import EventEnvelope, encode_event, parse_event
from progress.keys import KeyLayout
from progress.outbox import Outgoing, Placement, SpilledEvent
from progress.redis_store import SyncClient
from progress.store import StoreSettings

log = logging.getLogger("progress.outbox")


class RedisJournalSpill:
    """:class:`progress.outbox.Spill` on a sync redis-py client."""

    def __init__(self, client: SyncClient, settings: StoreSettings | None = None) -> None:
        self.client = client
        current = settings or StoreSettings()
        self.key = KeyLayout(current.key_prefix).journal_pending()
        self._ttl_ms = int(current.retention_seconds * 1000)

    def keep(self, batch: Sequence[Outgoing], placements: Sequence[Placement] = ()) -> None:
        """Keep a record of each event of ``batch``, with its placements (if pushed)."""
        if not batch:
            return
        landed: dict[uuid.UUID, list[list[str]]] = {}
        for placement in placements:
            landed.setdefault(placement.event_id, []).append([placement.stream, placement.id])
        mapping: dict[EncodableT, EncodableT] = {
            str(event.event_id): _record(event, recipients, landed.get(event.event_id, []))
            for event, recipients in batch
        }
        try:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.hset(self.key, mapping=mapping)
                pipe.pexpire(self.key, self._ttl_ms)
                pipe.execute()
        except redis.RedisError as exc:
            raise StoreUnavailable(f"could not spill journal records: {exc}") from exc
        log.warning("kept %d important events in the journal spill", len(batch))

    def pending(self, limit: int) -> list[SpilledEvent]:
        """Up to ``limit`` kept records (a record that no longer parses is dropped, logged)."""
        try:
            # With a count and values, on this client (bytes replies, RESP2), the reply is
            # flat: field, value, field, value...; redis-py types it for every mode.
            raw = cast(list[bytes], self.client.hrandfield(self.key, limit, withvalues=True))
        except redis.RedisError as exc:
            raise StoreUnavailable(f"could not read the journal spill: {exc}") from exc
        found: list[SpilledEvent] = []
        broken: list[bytes] = []
        for field, value in zip(raw[::2], raw[1::2], strict=True):
            try:
                found.append(_parse(value))
            except (InvalidEvent, ValueError, KeyError, TypeError):
                broken.append(field)
        if broken:
            log.error("dropping %d unreadable journal spill records", len(broken))
            self._delete([field.decode() for field in broken])
        return found

    def forget(self, event_ids: Sequence[uuid.UUID]) -> None:
        """Drop these records."""
        self._delete([str(event_id) for event_id in event_ids])

    def size(self) -> int:
        """How many records wait."""
        try:
            return int(self.client.hlen(self.key))
        except redis.RedisError as exc:
            raise StoreUnavailable(f"could not read the journal spill: {exc}") from exc

    def _delete(self, fields: list[str]) -> None:
        if not fields:
            return
        try:
            self.client.hdel(self.key, *fields)
        except redis.RedisError as exc:
            raise StoreUnavailable(f"could not update the journal spill: {exc}") from exc


def _record(event: EventEnvelope, recipients: Sequence[str], placements: list[list[str]]) -> bytes:
    return orjson.dumps(
        {
            "event": orjson.Fragment(encode_event(event)),
            "recipients": list(recipients),
            "placements": placements,
        }
    )


def _parse(value: bytes) -> SpilledEvent:
    data = orjson.loads(value)
    event = parse_event(data["event"])
    placements = [Placement(event.event_id, stream, id_) for stream, id_ in data["placements"]]
    return SpilledEvent(event, [str(r) for r in data["recipients"]], placements)
