"""In-memory stand-ins for tests: the outbox's journal without a database.

:class:`MemoryJournal` is a :class:`progress.outbox.ReadableJournal` with the SQL audit log's
semantics (``progress.audit_log.AuditLog``): one row per event id, status ``pending`` when recorded,
``published`` / ``failed`` after a push (each mark one more attempt), rows read back oldest
first. ``down`` makes every call raise, as a database that does not answer.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from progress.events import EventEnvelope
from progress.outbox import Outgoing, Placement


class JournalDown(ConnectionError):
    """What a :class:`MemoryJournal` raises while ``down``."""


@dataclass(slots=True)
class MemoryRecord:
    """One journal row."""

    id: int
    event: EventEnvelope
    recipients: list[str]
    created_at: datetime
    status: str = "pending"
    attempts: int = 0
    last_error: str | None = None
    placements: list[Placement] = field(default_factory=list)


class MemoryJournal:
    """The outbox journal in a dict (see the module docstring)."""

    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, MemoryRecord] = {}
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise JournalDown("journal database unavailable")

    def record(self, batch: Sequence[Outgoing]) -> int:
        """Add a pending row for each event not recorded yet; how many."""
        self._check()
        now = datetime.now(UTC).replace(tzinfo=None)
        fresh = 0
        for event, recipients in batch:
            if event.event_id not in self.rows:
                row = MemoryRecord(len(self.rows) + 1, event, list(recipients), now)
                self.rows[event.event_id] = row
                fresh += 1
        return fresh

    def mark_published(
        self, event_ids: Sequence[uuid.UUID], placements: Sequence[Placement]
    ) -> None:
        """Status ``published``, one more attempt; remember where each copy landed."""
        self._check()
        for event_id in event_ids:
            if (row := self.rows.get(event_id)) is not None:
                row.status, row.attempts, row.last_error = "published", row.attempts + 1, None
                # A refused duplicate has no placement: the first push's stay, as in SQL.
                if landed := [p for p in placements if p.event_id == event_id]:
                    row.placements = landed

    def mark_failed(self, event_ids: Sequence[uuid.UUID], reason: str) -> None:
        """Status ``failed``, one more attempt, and why."""
        self._check()
        for event_id in event_ids:
            if (row := self.rows.get(event_id)) is not None:
                row.status, row.attempts, row.last_error = "failed", row.attempts + 1, reason

    def get(self, ids: Iterable[int]) -> list[MemoryRecord]:
        """These rows (those that exist), oldest first."""
        self._check()
        wanted = set(ids)
        return [row for row in self.rows.values() if row.id in wanted]

    def failed_ids(self, limit: int = 10_000) -> list[int]:
        """Ids of failed rows, oldest first."""
        self._check()
        return [row.id for row in self.rows.values() if row.status == "failed"][:limit]

    def due_for_push(
        self, older_than: datetime, max_attempts: int, limit: int = 500
    ) -> list[MemoryRecord]:
        """Pending rows created before ``older_than``, failed ones with attempts left."""
        self._check()
        due = [
            row
            for row in self.rows.values()
            if (row.status == "pending" and row.created_at < older_than)
            or (row.status == "failed" and row.attempts < max_attempts)
        ]
        return due[:limit]

    def status(self, event: EventEnvelope) -> str | None:
        """The row's status for ``event`` (None when not recorded)."""
        row = self.rows.get(event.event_id)
        return None if row is None else row.status
