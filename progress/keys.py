"""The Redis key layout. Documented in docs/redis.md; change both together.

Every key of one user shares the hash tag ``{u:<user_id>}`` so a user's stream, stream meta,
task snapshots and pub/sub channel live on one Redis Cluster shard. Broadcast keys use ``{b}``.
"""

from __future__ import annotations

from dataclasses import dataclass

BROADCAST = "b"


def user_stream(user_id: str) -> str:
    """The stream name (not the key) that holds ``user_id``'s events."""
    return f"u:{user_id}"


def user_of_stream(stream: str) -> str | None:
    """The user id a stream name belongs to, or None for the broadcast stream."""
    return stream[2:] if stream.startswith("u:") else None


@dataclass(frozen=True, slots=True)
class KeyLayout:
    """Builds key and channel names under one ``prefix`` (default ``rt``)."""

    prefix: str = "rt"

    def events(self, stream: str) -> str:
        """The Redis stream of events (XADD/XRANGE)."""
        return f"{self.prefix}:{{{stream}}}:events"

    def meta(self, stream: str) -> str:
        """Hash: ``epoch`` of the stream, ``trimmed_before`` once anything was trimmed."""
        return f"{self.prefix}:{{{stream}}}:meta"

    def seen(self, stream: str) -> str:
        """Sorted set of the ids of important events appended to the stream (score: ms), so an
        outbox re-push of the same event is not appended twice; trimmed to the retention."""
        return f"{self.prefix}:{{{stream}}}:seen"

    def channel(self, stream: str) -> str:
        """The pub/sub channel live events of the stream are published on."""
        return f"{self.prefix}:{{{stream}}}:live"

    def stream_of_channel(self, channel: str) -> str:
        """Inverse of :meth:`channel`."""
        return channel[len(self.prefix) + 2 : -len("}:live")]

    def task(self, user_id: str, task_id: str) -> str:
        """Hash: latest snapshot of one task, under its owner's tag."""
        return f"{self.prefix}:{{{user_stream(user_id)}}}:task:{task_id}"

    def running(self) -> str:
        """Sorted set of running tasks (``<user> <task>``) scored by last sign of life (ms)."""
        return f"{self.prefix}:running"

    def readers(self, novel_id: str) -> str:
        """Set of user ids that may read a novel (owner and members), kept by the domain."""
        return f"{self.prefix}:{{n:{novel_id}}}:readers"

    def control(self) -> str:
        """Pub/sub channel for access changes, heard by every API instance."""
        return f"{self.prefix}:control"

    def realtime_mode(self) -> str:
        """Hash: the operators' realtime mode (``mode``, ``percent``, ``updated_at``)."""
        return f"{self.prefix}:realtime"

    def instances(self) -> str:
        """Sorted set of the API's runs (processes) scored by the time they are alive until
        (ms); stream leases name their run, and a dead run's leases stop counting."""
        return f"{self.prefix}:instances"

    def cancel(self, task_id: str) -> str:
        """Flag asking a running task to stop."""
        return f"{self.prefix}:cancel:{task_id}"

    def journal_pending(self) -> str:
        """Hash: important events pushed while the SQL journal was unreachable (event id ->
        spilled record), written to the journal once it is back (``progress.journal_spill``)."""
        return f"{self.prefix}:journal-pending"

    def tasks(self, user_id: str) -> str:
        """Sorted set of the user's task ids, scored by last update (ms)."""
        return f"{self.prefix}:{{{user_stream(user_id)}}}:tasks"
