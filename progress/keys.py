"""The Redis key layout: every key and channel name of the system is built here.

Documented in docs/redis.md, whose table tests/unit/test_redis_key_table.py checks against this
class: change both together. Every key of one user shares the hash tag ``{u:<user_id>}`` so a
user's stream, stream meta, task snapshots, pub/sub channel, leases and buckets live on one
Redis Cluster shard (a Lua script may touch one slot only). Broadcast keys use ``{b}``, an
address's abuse keys ``{ip:<address>}``, a novel's readers ``{n:<novel_id>}``, the outage
detector of a dependency the tasks need ``{dep:<dependency>}``.
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
        """Stream ``rt:{<stream>}:events`` (``rt:{u:<user>}:events``, ``rt:{b}:events``): the
        events, field ``e`` = event JSON (XADD/XRANGE)."""
        return f"{self.prefix}:{{{stream}}}:events"

    def meta(self, stream: str) -> str:
        """Hash ``rt:{<stream>}:meta``: ``epoch`` of the stream, ``trimmed_before`` once anything
        was trimmed."""
        return f"{self.prefix}:{{{stream}}}:meta"

    def seen(self, stream: str) -> str:
        """Sorted set ``rt:{<stream>}:seen``: the ids of important events appended to the stream
        (score: ms), so an outbox re-push of the same event is not appended twice; trimmed to
        the retention."""
        return f"{self.prefix}:{{{stream}}}:seen"

    def channel(self, stream: str) -> str:
        """Pub/sub channel ``rt:{<stream>}:live``: live events of the stream."""
        return f"{self.prefix}:{{{stream}}}:live"

    def stream_of_channel(self, channel: str) -> str:
        """Inverse of :meth:`channel`."""
        return channel[len(self.prefix) + 2 : -len("}:live")]

    def task(self, user_id: str, task_id: str) -> str:
        """Hash ``rt:{u:<user>}:task:<task>``: latest snapshot of one task, under its owner's
        tag."""
        return f"{self.prefix}:{{{user_stream(user_id)}}}:task:{task_id}"

    def workflow(self, user_id: str, workflow_id: str) -> str:
        """Hash ``rt:{u:<user>}:wf:<workflow>``: a workflow's counts, throttle state and one
        field ``t:<task>`` per task (its state, weight and name), kept by ``workflow.lua``."""
        return f"{self.prefix}:{{{user_stream(user_id)}}}:wf:{workflow_id}"

    def workflow_running(self, user_id: str, workflow_id: str) -> str:
        """Sorted set ``rt:{u:<user>}:wf:<workflow>:running``: the workflow's running tasks,
        scored by start (ms)."""
        return f"{self.prefix}:{{{user_stream(user_id)}}}:wf:{workflow_id}:running"

    def running(self) -> str:
        """Sorted set ``rt:running``: running tasks (``<user> <task>``) scored by last sign of
        life (ms)."""
        return f"{self.prefix}:running"

    def readers(self, novel_id: str) -> str:
        """Set ``rt:{n:<novel>}:readers``: user ids that may read a novel (owner and members),
        kept by the domain."""
        return f"{self.prefix}:{{n:{novel_id}}}:readers"

    def control(self) -> str:
        """Pub/sub channel ``rt:control``: access, preference and mode changes, heard by every API
        instance."""
        return f"{self.prefix}:control"

    def realtime_mode(self) -> str:
        """Hash ``rt:realtime``: the operators' realtime mode (``mode``, ``percent``,
        ``updated_at``)."""
        return f"{self.prefix}:realtime"

    def instances(self) -> str:
        """Sorted set ``rt:instances``: the API's runs (processes) scored by the time they are
        alive until (ms); stream leases name their run, and a dead run's leases stop counting."""
        return f"{self.prefix}:instances"

    def cancel(self, task_id: str) -> str:
        """String ``rt:cancel:<task>``: asks a running task (or, under a novel's id, every step of
        its workflow) to stop."""
        return f"{self.prefix}:cancel:{task_id}"

    def journal_pending(self) -> str:
        """Hash ``rt:journal-pending``: important events pushed while the SQL journal was
        unreachable (event id -> spilled record), written to the journal once it is back
        (``progress.journal_spill``)."""
        return f"{self.prefix}:journal-pending"

    def tasks(self, user_id: str) -> str:
        """Sorted set ``rt:{u:<user>}:tasks``: the user's task ids, scored by last update (ms)."""
        return f"{self.prefix}:{{{user_stream(user_id)}}}:tasks"

    def all_events(self) -> str:
        """SCAN match pattern of every event stream (``rt:{*}:events``), users' and
        broadcast; a pattern, not a key."""
        return f"{self.prefix}:{{*}}:events"

    def leases(self, user_id: str) -> str:
        """Sorted set ``rt:{u:<user>}:conns``: the user's open streams, ``<connection>@<run>``
        scored by lease expiry (ms)."""
        return f"{self.prefix}:{{{user_stream(user_id)}}}:conns"

    def connection(self, user_id: str, connection_id: str) -> str:
        """Hash ``rt:{u:<user>}:conn:<connection>``: who holds one open stream, and where."""
        return f"{self.prefix}:{{{user_stream(user_id)}}}:conn:{connection_id}"

    def sse_token(self, digest: str) -> str:
        """String ``rt:sse-token:<digest>``: who an unspent sse_token opens a stream for, under
        a digest of the token (a copy of Redis holds no token that works)."""
        return f"{self.prefix}:sse-token:{digest}"

    def preferences(self, user_id: str) -> str:
        """String ``rt:{u:<user>}:prefs``: the user's notification preferences as JSON."""
        return f"{self.prefix}:{{{user_stream(user_id)}}}:prefs"

    def user_bucket(self, user_id: str, action: str) -> str:
        """Hash ``rt:{u:<user>}:rl:<action>``: the user's token bucket for ``action``."""
        return f"{self.prefix}:{{{user_stream(user_id)}}}:rl:{action}"

    def ip_bucket(self, ip: str, action: str) -> str:
        """Hash ``rt:{ip:<ip>}:rl:<action>``: the client address's token bucket for ``action``."""
        return f"{self.prefix}:{{ip:{ip}}}:rl:{action}"

    def ip_strikes(self, ip: str) -> str:
        """String ``rt:{ip:<ip>}:strikes``: the address's strikes in the current window."""
        return f"{self.prefix}:{{ip:{ip}}}:strikes"

    def ip_ban(self, ip: str) -> str:
        """String ``rt:{ip:<ip>}:ban``: exists while the address is banned."""
        return f"{self.prefix}:{{ip:{ip}}}:ban"

    def outage(self, dependency: str) -> str:
        """Hash ``rt:{dep:<dependency>}:outage``: exists while the workers consider the
        dependency (``llm``, ``database``) down; ``opened_at`` (ms)."""
        return f"{self.prefix}:{{dep:{dependency}}}:outage"

    def dependency_failures(self, dependency: str) -> str:
        """Sorted set ``rt:{dep:<dependency>}:failures``: task ids whose call of the dependency
        failed, scored by the last failure (ms), trimmed to the detection window."""
        return f"{self.prefix}:{{dep:{dependency}}}:failures"

    def dependency_failing_users(self, dependency: str) -> str:
        """Sorted set ``rt:{dep:<dependency>}:failing-users``: users of those tasks, scored by
        their last failure (ms), trimmed to the detection window."""
        return f"{self.prefix}:{{dep:{dependency}}}:failing-users"

    def outage_notified(self, dependency: str) -> str:
        """Set ``rt:{dep:<dependency>}:notified``: users told of the current outage (each gets
        one ``system.error``, and one ``system.notification`` when it ends)."""
        return f"{self.prefix}:{{dep:{dependency}}}:notified"
