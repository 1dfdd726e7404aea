"""The latest state of a task, kept beside its events for ``GET /api/v1/tasks/{id}``.

The store applies :func:`snapshot_fields` of every task event to a flat string hash; pure.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from progress.events import (
    EventEnvelope,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskHeartbeat,
    TaskRetrying,
    TaskStalled,
    TaskStarted,
    TaskUpdated,
)

TaskStatus = Literal["running", "retrying", "stalled", "completed", "failed", "cancelled"]


class TaskSnapshot(BaseModel):
    """What a client needs to draw a task's progress bar without its event history."""

    task_id: str
    user_id: str
    status: TaskStatus
    task_name: str | None = None
    percent: float = 0.0
    stage: str | None = None
    message: str = ""
    attempt: int = 1
    estimated_seconds: float | None = None
    started_at: datetime | None = None
    updated_at: datetime
    novel_id: str | None = None
    workflow_id: str | None = None
    result_summary: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    retryable: bool | None = None
    retry_suggestion: str | None = None
    cancelled_by: str | None = None

    @classmethod
    def from_hash(cls, fields: dict[str, str]) -> TaskSnapshot:
        """Build from the stored string hash (empty strings mean unset)."""
        return cls.model_validate({k: v for k, v in fields.items() if v != ""})


def snapshot_fields(event: EventEnvelope) -> dict[str, str] | None:
    """Hash fields ``event`` sets on its task's snapshot, or None if it is no task event."""
    if event.task_id is None or event.user_id is None or not event.type.startswith("task."):
        return None
    fields = {
        "task_id": event.task_id,
        "user_id": event.user_id,
        "updated_at": event.occurred_at.isoformat(),
    }
    if event.novel_id:
        fields["novel_id"] = event.novel_id
    if event.workflow_id:
        fields["workflow_id"] = event.workflow_id
    fields.update(_fields_of(event))
    return fields


def _fields_of(event: EventEnvelope) -> dict[str, str]:
    match event:
        case TaskStarted():
            return {
                "status": "running",
                "task_name": event.task_name,
                "percent": "0",
                "stage": "",
                "message": "",
                "attempt": str(event.attempt),
                "estimated_seconds": _opt(event.estimated_seconds),
                "started_at": event.occurred_at.isoformat(),
                "error_type": "",
                "error_message": "",
                "retryable": "",
                "retry_suggestion": "",
            }
        case TaskUpdated():
            return {
                "status": "running",
                "percent": str(event.percent),
                "stage": event.stage or "",
                "message": event.message,
            }
        case TaskHeartbeat():
            return {"status": "running"}
        case TaskCompleted():
            return {
                "status": "completed",
                "percent": "100",
                "result_summary": event.result_summary or "",
            }
        case TaskFailed():
            return {
                "status": "failed",
                "error_type": event.error_type,
                "error_message": event.message,
                "retryable": str(event.retryable).lower(),
                "retry_suggestion": event.retry_suggestion,
                "attempt": str(event.attempt),
            }
        case TaskRetrying():
            return {
                "status": "retrying",
                "error_type": event.error_type,
                "error_message": event.message,
                "attempt": str(event.attempt),
            }
        case TaskCancelled():
            return {
                "status": "cancelled",
                "message": event.reason,
                "cancelled_by": event.cancelled_by or "",
            }
        case TaskStalled():
            return {"status": "stalled"}
    return {}


def _opt(value: float | None) -> str:
    return "" if value is None else str(value)
