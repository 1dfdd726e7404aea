"""The SQL journal for ``progress.outbox``: the audit log with group commit and the
tests' fault injection. The outbox itself (journal first, push, marks, spill, its drain, the
dispatcher and the resend) is ``progress.outbox``.

    task / publish ─▶ OutboxWriter ─▶ SqlJournal.record ─▶ (group) commit ─▶ push ─▶ published
                                                       └─ crash here: row stays pending
    worker start, beat every outbox_dispatch_seconds ─▶ dispatch_pending ─▶ push ─▶ published
    record fails (database down) ─▶ journal spill (Redis) ─▶ push ─▶ spill notes the placements
    worker start, beat, the API seeing its database back ─▶ drain_spill ─▶ rows (deduplicated)

A re-push is harmless: the Redis store refuses an important event id it already appended.
"""

from __future__ import annotations

import logging
import os
import signal
import uuid
from collections.abc import Sequence

from progress.audit_log import AuditLog
from progress.group_commit import GroupCommitter
from progress.outbox import Outgoing, Placement

log = logging.getLogger("progress.outbox")


Pushed = tuple[uuid.UUID, list[Placement]]


class SqlJournal:
    """``progress.outbox.Journal`` on the audit log (which is one itself, without batching).

    With ``group_commit``, concurrent ``record`` calls share transactions (each still waits
    for its commit), and ``mark_published`` calls are batched in the background without waiting:
    a mark lost in a crash only means one harmless re-push by the dispatcher.
    """

    def __init__(
        self,
        audit: AuditLog,
        group_commit: tuple[float, int] | None = None,
        crash_after_commit: bool = False,
    ) -> None:
        self.audit = audit
        self._committer: GroupCommitter[Outgoing] | None = None
        self._marker: GroupCommitter[Pushed] | None = None
        if group_commit is not None:
            max_wait, max_batch = group_commit
            self._committer = GroupCommitter(audit.record, max_wait, max_batch)
            self._marker = GroupCommitter(self._mark_published, max_wait, max_batch)
        self._crash_after_commit = crash_after_commit

    def _mark_published(self, items: list[Pushed]) -> None:
        try:
            self.audit.mark_published(
                [event_id for event_id, _ in items], [p for _, found in items for p in found]
            )
        except Exception:
            log.exception("could not mark %d pushed events published", len(items))

    def record(self, batch: Sequence[Outgoing]) -> None:
        """Commit the events (sharing a transaction with concurrent callers if batching)."""
        if self._committer is not None:
            self._committer.submit(batch)
        else:
            self.audit.record(batch)
        if self._crash_after_commit:
            # Fault injection for tests (WORKER_OUTBOX_CRASH_AFTER_COMMIT): die between the
            # commit and the push, the window the outbox exists for.
            log.warning("outbox fault injection: SIGKILL after commit")
            os.kill(os.getpid(), signal.SIGKILL)

    def mark_published(
        self, event_ids: Sequence[uuid.UUID], placements: Sequence[Placement]
    ) -> None:
        """Mark the events published and remember their stream ids."""
        if self._marker is None:
            self.audit.mark_published(event_ids, placements)
            return
        by_event: dict[uuid.UUID, list[Placement]] = {event_id: [] for event_id in event_ids}
        for placement in placements:
            by_event[placement.event_id].append(placement)
        self._marker.defer(list(by_event.items()))

    def mark_failed(self, event_ids: Sequence[uuid.UUID], reason: str) -> None:
        """Mark the events failed with ``reason``."""
        self.audit.mark_failed(event_ids, reason)

    def close(self) -> None:
        """Commit what is queued and stop the group-commit threads."""
        for committer in (self._committer, self._marker):
            if committer is not None:
                committer.close()
