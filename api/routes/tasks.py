"""Task snapshots, for pages that open mid-task and for polling clients."""

from __future__ import annotations

from fastapi import APIRouter, status
from pydantic import BaseModel

from api.deps import CurrentUser, Services, WritingUser
from api.errors import COMMON_ERRORS, ApiError
from api.text import PathId
from progress.snapshot import TaskSnapshot
from workers import contracts

router = APIRouter(prefix="/api/v1/tasks", tags=["tasks"], responses=COMMON_ERRORS)


@router.get(
    "/{task_id}", response_model=TaskSnapshot, responses={404: {"description": "no such task"}}
)
async def task_snapshot(
    task_id: PathId, principal: CurrentUser, services: Services
) -> TaskSnapshot:
    """The latest state of one of the caller's tasks; 404 for any task not theirs."""
    snapshot = await services.store.task_snapshot(principal.user_id, task_id)
    if snapshot is None:
        raise ApiError(404, "task_not_found", "no such task")
    return snapshot


class Cancelling(BaseModel):
    """The task was asked to stop; ``task.progress-cancelled`` follows on the stream."""

    task_id: str
    status: str = "cancelling"


@router.post(
    "/{task_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Cancelling,
    responses={404: {"description": "no such task"}},
)
def cancel_task(task_id: PathId, principal: WritingUser) -> Cancelling:
    """Stop one of the caller's tasks (a novel's workflow task stops the whole workflow)."""
    contracts.cancel_task(principal.user_id, task_id)
    return Cancelling(task_id=task_id)
