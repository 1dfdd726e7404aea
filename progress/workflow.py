"""Progress of a whole workflow (chain, group, chord and their nestings), counted in Redis.

A workflow is every task published under one ``workflow_id`` (``acting_as(...,
workflow_id=...)``; the id travels in the identity header, so children of any canvas inherit
it). Its tasks are counted as they are sent (``after_task_publish`` queues a :class:`TaskQueued`
marker) and as their events are stored; :class:`WorkflowWriter` wraps the process's event
writer and, after each stored batch, runs ``workflow.lua`` once per workflow of the batch:

    task events of a batch ──▶ inner writer (stream, outbox) ──▶ transitions per workflow
        ──▶ workflow.lua (counts + per-task state, one call per workflow, O(1) per task)
        ──▶ send now ─▶ ``workflow.progress`` through the inner writer (important if final)
        ──▶ held     ─▶ asked again at the due time from the pump's tick (trailing edge)

The throttle lives in the workflow's hash, so it holds across every process that reports for
the workflow: at most one event per ``throttle_seconds``, and always one when the state changes
or the workflow finishes. A task's own field in the hash makes transitions idempotent: a retry,
a redelivery or an event stored twice never counts a task twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import redis
from pydantic import BaseModel, ConfigDict, Field

from progress.errors import PartlyStored, StoreUnavailable
from progress.events import EventEnvelope, Identifier, RunningTask, WorkflowProgress
from progress.keys import KeyLayout
from progress.redis_cluster import run_commands_on
from progress.redis_pipeline import LuaScript, lua_source
from progress.store import EventWriter, StoredEvent

log = logging.getLogger("progress.workflow")

WORKFLOW_LUA = lua_source("progress", "workflow.lua")
COUNT = LuaScript(WORKFLOW_LUA)

#: Running tasks named in one ``workflow.progress`` event.
RUNNING_SHOWN = 5

Outgoing = tuple[EventEnvelope, Sequence[str]]


class QueuedTask(BaseModel):
    """One task of a :class:`TaskQueued` marker."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_id: Identifier
    task_name: str = ""
    weight: float = Field(default=1.0, gt=0)


class TaskQueued(EventEnvelope):
    """Tasks of a workflow were sent: counted, never stored in a stream (internal marker).

    The sender queue folds consecutive markers of one workflow into one (:func:`absorb`), so a
    group of 10,000 tasks takes a few queue slots, not 10,000.
    """

    type: Literal["workflow.task-queued"] = "workflow.task-queued"
    workflow_id: Identifier
    tasks: list[QueuedTask] = Field(min_length=1)


#: Tasks one marker holds at most (one script call's worth).
MARKER_TASKS = 500


def absorb(last: EventEnvelope, new: EventEnvelope) -> bool:
    """Fold marker ``new`` into ``last`` (the queue's tail) if both are markers of one
    workflow and ``last`` has room; True if it did (``new`` is then not queued)."""
    if not (isinstance(last, TaskQueued) and isinstance(new, TaskQueued)):
        return False
    if (last.user_id, last.workflow_id) != (new.user_id, new.workflow_id):
        return False
    if len(last.tasks) + len(new.tasks) > MARKER_TASKS:
        return False
    last.tasks.extend(new.tasks)  # the model is frozen, its list is the queue's own
    return True


class WorkflowCancelRequested(EventEnvelope):
    """The whole workflow was cancelled: it ends ``cancelled`` (internal marker)."""

    type: Literal["workflow.cancel-requested"] = "workflow.cancel-requested"
    workflow_id: Identifier


MARKER_TYPES = frozenset(
    {"workflow.task-queued", "workflow.cancel-requested", "workflow.counts-pending"}
)

_KINDS = {
    "task.progress-started": "started",
    "task.progress-updated": "alive",
    "task.progress-heartbeat": "alive",
    "task.progress-completed": "completed",
    "task.progress-failed": "failed",
    "task.progress-cancelled": "cancelled",
    "task.progress-retrying": "retrying",
    "task.progress-stalled": "stalled",
    "workflow.task-queued": "queued",
    "workflow.cancel-requested": "cancel",
}

WorkflowKey = tuple[str, str]  # (user id, workflow id)

_LIVING = frozenset({"started", "alive"})


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of one task of a workflow, as ``workflow.lua`` takes it."""

    kind: str
    task_id: str = ""
    weight: float = 1.0
    task_name: str = ""
    reason: str = ""

    def args(self) -> list[str]:
        """The script's five ARGV items."""
        return [self.kind, self.task_id, repr(self.weight), self.task_name, self.reason]


class CountsPending(EventEnvelope):
    """Transitions of stored events whose counting failed (Redis unreachable): the sender
    sends this again, as it does any unsent event, so the counts follow the events (internal
    marker). A transition applied twice changes nothing (the task's own state field)."""

    type: Literal["workflow.counts-pending"] = "workflow.counts-pending"
    workflow_id: Identifier
    transitions: list[Transition] = Field(min_length=1)


def pending_counts(
    changes: dict[WorkflowKey, tuple[list[Transition], str | None]],
) -> list[Outgoing]:
    """``changes`` as markers to send again, one per workflow."""
    return [
        (CountsPending(user_id=user, workflow_id=workflow, novel_id=novel, transitions=found), ())
        for (user, workflow), (found, novel) in changes.items()
    ]


def transitions_of(event: EventEnvelope) -> list[Transition]:
    """The workflow transitions ``event`` makes (none for most events)."""
    if isinstance(event, CountsPending):
        return list(event.transitions)
    kind = _KINDS.get(event.type)
    if kind is None or event.workflow_id is None or event.user_id is None:
        return []
    if isinstance(event, TaskQueued):
        return [Transition(kind, t.task_id, t.weight, t.task_name) for t in event.tasks]
    if kind == "cancel":
        return [Transition(kind)]
    if event.task_id is None:
        return []
    name = str(getattr(event, "task_name", ""))
    reason = ""
    if kind == "failed":
        reason = f"{getattr(event, 'error_type', '')}: {getattr(event, 'message', '')}"
    return [Transition(kind, event.task_id, 1.0, name, reason)]


def transitions_by_workflow(
    batch: Sequence[Outgoing],
) -> dict[WorkflowKey, tuple[list[Transition], str | None]]:
    """Transitions of ``batch`` per workflow, in order, with a novel id seen for it.

    A sign of life right after the task's start or another sign of life in the same batch
    changes nothing, so it is left out (a task's update usually shares its start's batch).
    """
    found: dict[WorkflowKey, tuple[list[Transition], str | None]] = {}
    previous: dict[str, str] = {}
    for event, _ in batch:
        for transition in transitions_of(event):
            if transition.kind == "alive" and previous.get(transition.task_id) in _LIVING:
                continue
            previous[transition.task_id] = transition.kind
            assert event.user_id is not None and event.workflow_id is not None
            key = (event.user_id, event.workflow_id)
            transitions, novel = found.get(key, ([], None))
            transitions.append(transition)
            found[key] = (transitions, novel or event.novel_id)
    return found


@dataclass(frozen=True, slots=True)
class Tally:
    """A workflow's counts as ``workflow.lua`` returned them."""

    emit: int
    due_ms: int
    total: int
    done: int
    failed: int
    cancelled: int
    stalled: int
    total_weight: float
    ended_weight: float
    state: str
    failed_task: str
    failed_reason: str
    first_ms: int
    now_ms: int
    finished: bool
    running: list[RunningTask] = field(default_factory=list)

    @classmethod
    def from_reply(cls, reply: Sequence[bytes | int]) -> Tally:
        """Parse the script's reply."""
        text = [v.decode() if isinstance(v, bytes) else v for v in reply]
        emit, due_ms, total, done, failed, cancelled, stalled = (int(v) for v in text[:7])
        names = text[15:]
        running = [
            RunningTask(task_id=str(names[i]), task_name=str(names[i + 1]))
            for i in range(0, len(names) - 1, 2)
        ]
        return cls(
            emit,
            due_ms,
            total,
            done,
            failed,
            cancelled,
            stalled,
            total_weight=float(text[7]),
            ended_weight=float(text[8]),
            state=str(text[9]),
            failed_task=str(text[10]),
            failed_reason=str(text[11]),
            first_ms=int(text[12]),
            now_ms=int(text[13]),
            finished=bool(int(text[14])),
            running=running,
        )

    def percent(self) -> float:
        """The ended share of the known tasks' weights, 0..100."""
        if self.total_weight <= 0:
            return 0.0
        return max(0.0, min(100.0, 100 * self.ended_weight / self.total_weight))

    def eta_seconds(self) -> float | None:
        """Seconds left at the pace measured since the workflow's first task (None: no pace
        yet)."""
        if self.finished:
            return 0.0
        elapsed = (self.now_ms - self.first_ms) / 1000
        if self.ended_weight <= 0 or elapsed <= 0:
            return None
        pace = self.ended_weight / elapsed
        return max(0.0, (self.total_weight - self.ended_weight) / pace)

    def event(self, user_id: str, workflow_id: str, novel_id: str | None) -> WorkflowProgress:
        """The ``workflow.progress`` event of these counts."""
        return WorkflowProgress(
            user_id=user_id,
            workflow_id=workflow_id,
            novel_id=novel_id,
            state=self.state,  # type: ignore[arg-type]
            total=self.total,
            done=self.done,
            failed=self.failed,
            cancelled=self.cancelled,
            stalled=self.stalled,
            percent=round(self.percent(), 2),
            running=self.running,
            eta_seconds=self.eta_seconds(),
            final=self.finished,
            failed_task_id=self.failed_task or None,
            failed_reason=self.failed_reason or None,
            important=self.emit == 2,
        )


class WorkflowCounter:
    """Keeps workflows' counts in Redis (``workflow.lua``), one script call per workflow."""

    def __init__(
        self,
        client: Callable[[], redis.Redis | redis.RedisCluster],
        layout: KeyLayout,
        retention_seconds: float,
        throttle_seconds: float,
    ) -> None:
        self._client_factory = client
        self._client: redis.Redis | redis.RedisCluster | None = None
        self._lock = threading.Lock()
        self.layout = layout
        self._retention_ms = int(retention_seconds * 1000)
        self._throttle_ms = int(throttle_seconds * 1000)
        self.calls = 0

    def apply(
        self, changes: dict[WorkflowKey, list[Transition]], *, now: bool = False
    ) -> dict[WorkflowKey, Tally]:
        """Apply each workflow's transitions (none: release a held value; ``now``: whether it
        is due or not); the new tallies."""
        with self._lock:  # threads of one process share the writer: one client for them all
            if self._client is None:
                self._client = self._client_factory()
            client = self._client
        commands = []
        for (user_id, workflow_id), transitions in changes.items():
            keys = [
                self.layout.workflow(user_id, workflow_id),
                self.layout.workflow_running(user_id, workflow_id),
            ]
            args: list[str | int] = [
                self._retention_ms,
                -1 if now else self._throttle_ms,
                RUNNING_SHOWN,
                len(transitions),
            ]
            for transition in transitions:
                args += transition.args()
            commands.append(COUNT.call(keys, args))
        try:
            replies = run_commands_on(client, commands, (COUNT,))  # a call: one workflow, one slot
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            raise StoreUnavailable(f"Redis unavailable: {exc}") from exc
        self.calls += len(commands)
        return {key: Tally.from_reply(reply) for key, reply in zip(changes, replies, strict=True)}

    def snapshot(self, user_id: str, workflow_id: str) -> Tally | None:
        """The workflow's current counts without changing them (None if unknown)."""
        tally = self.apply({(user_id, workflow_id): [Transition("peek")]})
        return tally[(user_id, workflow_id)] if tally else None

    def close(self) -> None:
        """Close the client."""
        if self._client is not None:
            self._client.close()
            self._client = None


def peek_call(layout: KeyLayout, user_id: str, workflow_id: str) -> tuple[list[str], list[str]]:
    """KEYS and ARGV of a ``workflow.lua`` call that only reads the workflow's counts."""
    keys = [layout.workflow(user_id, workflow_id), layout.workflow_running(user_id, workflow_id)]
    return keys, ["0", "0", str(RUNNING_SHOWN), "1", *Transition("peek").args()]


class WorkflowWriter:
    """An EventWriter that stores through ``inner``, then counts the batch's workflows and
    sends their ``workflow.progress`` events (held ones when :meth:`tick` finds them due)."""

    def __init__(
        self,
        inner: EventWriter,
        counter: WorkflowCounter | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.counter = counter
        self._clock = clock
        self._held: dict[WorkflowKey, tuple[float, str | None]] = {}
        self.errors = 0

    def append(self, event: EventEnvelope, recipients: Sequence[str] = ()) -> list[StoredEvent]:
        """Store ``event`` (a marker is only counted)."""
        return self.append_many([(event, recipients)])

    def append_many(self, batch: Sequence[Outgoing]) -> list[StoredEvent]:
        """Store the batch's events, then count its workflows' transitions."""
        events = [item for item in batch if item[0].type not in MARKER_TYPES]
        stored = self.inner.append_many(events) if events else []
        if self.counter is None:
            return stored
        changes = transitions_by_workflow(batch)
        if not changes:
            return stored
        try:
            self._count(changes)
        except StoreUnavailable as exc:
            if not events:
                raise  # only markers: the pump keeps them and tries again
            self.errors += 1
            log.warning("workflow counts of %d workflows not updated yet: %s", len(changes), exc)
            raise PartlyStored(pending_counts(changes), stored) from exc
        return stored

    def _count(
        self, changes: dict[WorkflowKey, tuple[list[Transition], str | None]], now: bool = False
    ) -> None:
        assert self.counter is not None
        tallies = self.counter.apply({key: value[0] for key, value in changes.items()}, now=now)
        outgoing: list[Outgoing] = []
        for key, tally in tallies.items():
            novel_id = changes[key][1]
            if tally.emit:
                self._held.pop(key, None)
                outgoing.append((tally.event(key[0], key[1], novel_id), ()))
            elif tally.due_ms and key not in self._held:
                wait = max(0.0, (tally.due_ms - tally.now_ms) / 1000)
                self._held[key] = (self._clock() + wait, novel_id)
        if outgoing:
            self.inner.append_many(outgoing)

    def tick(self) -> float | None:
        """Send the held workflow values that fell due; when to call again (None: nothing
        held)."""
        now = self._clock()
        due: dict[WorkflowKey, tuple[list[Transition], str | None]] = {
            key: ([], novel) for key, (at, novel) in self._held.items() if at <= now
        }
        if due:
            for key in due:
                self._held.pop(key)
            try:
                self._count(due)
            except StoreUnavailable:
                self.errors += 1
                log.warning("held workflow progress of %d workflows not sent", len(due))
        return min((at for at, _ in self._held.values()), default=None)

    def close(self) -> None:
        """Send the held workflow values at once (no other process would: a workflow's last
        value would be lost with this one), then close the wrapped writer and the counter."""
        if self._held and self.counter is not None:
            held: dict[WorkflowKey, tuple[list[Transition], str | None]] = {
                key: ([], novel) for key, (_, novel) in self._held.items()
            }
            self._held.clear()
            try:
                self._count(held, now=True)
            except StoreUnavailable:
                self.errors += 1
                log.warning("held workflow progress of %d workflows not sent", len(held))
        self.inner.close()
        if self.counter is not None:
            self.counter.close()
