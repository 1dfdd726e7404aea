"""The event schema: one pydantic model per event type, discriminated on ``type``.

Every event shares the :class:`EventEnvelope` fields. ``parse_event`` turns a dict (or JSON
bytes) into the right model and raises :class:`progress.errors.InvalidEvent` naming the fields
that are wrong. See ``docs/events.md`` for the catalogue.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from progress.errors import InvalidEvent

SCHEMA_VERSION = 1

#: ids go into Redis key names and hash tags, so braces, spaces and colons-only ids are refused.
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")]

Audience = Literal["user", "session", "broadcast"]

#: ``json_schema_extra`` of a field whose value is the user's own content: the SQL audit stores
#: it encrypted (see ``progress.sensitive``). Redis and the stream carry it in clear.
SENSITIVE: dict[str, JsonValue] = {"sensitive": True}


def _utcnow() -> datetime:
    return datetime.now(UTC)


class EventEnvelope(BaseModel):
    """Fields every event carries.

    ``audience`` says who may receive it: ``user`` (every connection of ``user_id``),
    ``session`` (only connections of ``session_id``) or ``broadcast`` (every connection).
    ``important`` events are persisted before they are pushed (outbox) and never coalesced.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    important_by_default: ClassVar[bool] = False

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    occurred_at: datetime = Field(default_factory=_utcnow)
    schema_version: int = SCHEMA_VERSION
    user_id: Identifier | None = None
    session_id: Identifier | None = None
    audience: Audience = "user"
    task_id: Identifier | None = None
    novel_id: Identifier | None = None
    chapter_id: Identifier | None = None
    workflow_id: Identifier | None = None
    important: bool = Field(default=None, validate_default=True)

    @field_validator("important", mode="before")
    @classmethod
    def _default_importance(cls, value: bool | None) -> bool:
        return cls.important_by_default if value is None else value

    @field_validator("occurred_at")
    @classmethod
    def _must_be_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("occurred_at must carry a timezone")
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _audience_has_recipient(self) -> Self:
        if self.audience == "user" and self.user_id is None:
            raise ValueError("user_id is required unless audience is 'broadcast'")
        if self.audience == "session" and (self.session_id is None or self.user_id is None):
            raise ValueError("audience 'session' needs user_id and session_id")
        return self


class _TaskEvent(EventEnvelope):
    task_id: Identifier


class TaskStarted(_TaskEvent):
    """A task began running (again, on redelivery: see ``attempt``)."""

    type: Literal["task.progress-started"] = "task.progress-started"
    task_name: str
    estimated_seconds: float | None = Field(default=None, ge=0)
    attempt: int = Field(default=1, ge=1)


class TaskUpdated(_TaskEvent):
    """Progress of a running task; throttled to one per second per task."""

    type: Literal["task.progress-updated"] = "task.progress-updated"
    percent: float = Field(ge=0, le=100)
    stage: str | None = None
    message: str = ""
    details: dict[str, JsonValue] = Field(default_factory=dict)


class TaskHeartbeat(_TaskEvent):
    """The task is still running; sent every heartbeat interval by the worker process."""

    type: Literal["task.progress-heartbeat"] = "task.progress-heartbeat"
    elapsed_seconds: float = Field(ge=0)
    last_percent: float = Field(ge=0, le=100)


class TaskCompleted(_TaskEvent):
    """The task finished successfully."""

    important_by_default: ClassVar[bool] = True
    type: Literal["task.progress-completed"] = "task.progress-completed"
    result_summary: str | None = None
    duration_seconds: float = Field(ge=0)


class TaskFailed(_TaskEvent):
    """The task failed for good; ``retry_suggestion`` tells the writer what to do."""

    important_by_default: ClassVar[bool] = True
    type: Literal["task.progress-failed"] = "task.progress-failed"
    error_type: str
    message: str
    retryable: bool
    retry_suggestion: str
    attempt: int = Field(default=1, ge=1)


class TaskRetrying(_TaskEvent):
    """The task failed and Celery will run it again."""

    type: Literal["task.progress-retrying"] = "task.progress-retrying"
    error_type: str
    message: str
    attempt: int = Field(ge=1)
    retry_in_seconds: float | None = Field(default=None, ge=0)


class TaskCancelled(_TaskEvent):
    """The task was revoked before or while running."""

    important_by_default: ClassVar[bool] = True
    type: Literal["task.progress-cancelled"] = "task.progress-cancelled"
    reason: str = "cancelled"
    #: The user who asked for the stop; None when nobody did (expired, terminated, or revoked
    #: before it ran and the asker is unknown).
    cancelled_by: Identifier | None = None


class TaskStalled(_TaskEvent):
    """Heartbeats of a running task stopped arriving."""

    type: Literal["task.progress-stalled"] = "task.progress-stalled"
    last_seen_at: datetime
    missed_heartbeats: int = Field(ge=1)


class NovelCreated(EventEnvelope):
    """A novel exists; sent to its owner (members are invited then, and see nothing yet)."""

    important_by_default: ClassVar[bool] = True
    type: Literal["content.novel-created"] = "content.novel-created"
    novel_id: Identifier
    title: str
    premise: str = Field(default="", json_schema_extra=SENSITIVE)
    chapter_count: int = Field(default=0, ge=0)


class ChapterChange(BaseModel):
    """One chapter inside a ``content.chapter-updated`` event."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chapter_id: Identifier
    number: int = Field(ge=1)
    title: str = ""
    summary: str = Field(json_schema_extra=SENSITIVE)


class ChapterUpdated(EventEnvelope):
    """One or more chapters of a novel changed (batched updates name every chapter)."""

    important_by_default: ClassVar[bool] = True
    type: Literal["content.chapter-updated"] = "content.chapter-updated"
    novel_id: Identifier
    chapters: list[ChapterChange] = Field(min_length=1)


class WorkflowStatusChanged(EventEnvelope):
    """A workflow moved from one stage to the next."""

    type: Literal["workflow.status-changed"] = "workflow.status-changed"
    workflow_id: Identifier
    old_status: str | None
    new_status: str


class RunningTask(BaseModel):
    """One task of a workflow that is running now (inside ``workflow.progress``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_id: Identifier
    task_name: str = ""


WorkflowState = Literal["running", "completed", "failed", "cancelled"]


class WorkflowProgress(EventEnvelope):
    """How far a whole Celery workflow (chain, group, chord, nested) is; at most one per
    second per workflow, and always one when its state changes or it finishes (``final``:
    those are important, so journaled and never coalesced).

    ``total`` counts the tasks known so far (a chord built by a running task adds its tasks
    when they are sent); ``percent`` is the ended share of their weights.
    """

    type: Literal["workflow.progress"] = "workflow.progress"
    workflow_id: Identifier
    state: WorkflowState
    total: int = Field(ge=0)
    done: int = Field(ge=0)
    failed: int = Field(default=0, ge=0)
    cancelled: int = Field(default=0, ge=0)
    stalled: int = Field(default=0, ge=0)
    percent: float = Field(ge=0, le=100)
    running: list[RunningTask] = Field(default_factory=list)
    eta_seconds: float | None = Field(default=None, ge=0)
    final: bool = False
    failed_task_id: Identifier | None = None
    failed_reason: str | None = None


class SystemNotification(EventEnvelope):
    """A message from operators: maintenance, updates."""

    important_by_default: ClassVar[bool] = True
    type: Literal["system.notification"] = "system.notification"
    level: Literal["info", "warning", "critical"]
    message: str = Field(min_length=1)
    suggested_action: str | None = None


class SystemError(EventEnvelope):
    """Something broke on the platform's side."""

    important_by_default: ClassVar[bool] = True
    type: Literal["system.error"] = "system.error"
    severity: Literal["low", "medium", "high", "critical"]
    message: str = Field(min_length=1)
    affected_scope: str
    #: What the user can do meanwhile (or once it is fixed), when there is something.
    suggested_action: str | None = None


Event = Annotated[
    TaskStarted
    | TaskUpdated
    | TaskHeartbeat
    | TaskCompleted
    | TaskFailed
    | TaskRetrying
    | TaskCancelled
    | TaskStalled
    | NovelCreated
    | ChapterUpdated
    | WorkflowStatusChanged
    | WorkflowProgress
    | SystemNotification
    | SystemError,
    Field(discriminator="type"),
]

_adapter: TypeAdapter[Event] = TypeAdapter(Event)

EVENT_TYPES: tuple[str, ...] = tuple(
    model.model_fields["type"].default
    for model in (
        TaskStarted,
        TaskUpdated,
        TaskHeartbeat,
        TaskCompleted,
        TaskFailed,
        TaskRetrying,
        TaskCancelled,
        TaskStalled,
        NovelCreated,
        ChapterUpdated,
        WorkflowStatusChanged,
        WorkflowProgress,
        SystemNotification,
        SystemError,
    )
)

TERMINAL_TASK_TYPES = frozenset(
    {"task.progress-completed", "task.progress-failed", "task.progress-cancelled"}
)


def parse_event(data: dict[str, Any] | bytes | str | EventEnvelope) -> Event:
    """Validate ``data`` into its event model; raise ``InvalidEvent`` naming each bad field."""
    if isinstance(data, EventEnvelope):
        return data  # type: ignore[return-value]
    try:
        if isinstance(data, bytes | str):
            return _adapter.validate_json(data)
        return _adapter.validate_python(data)
    except ValidationError as exc:
        raise InvalidEvent.from_validation_error(exc) from None


def encode_event(event: EventEnvelope) -> bytes:
    """The event as compact JSON bytes: the one serialization stored and relayed."""
    return event.__pydantic_serializer__.to_json(event)
