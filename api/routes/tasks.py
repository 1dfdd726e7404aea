"""Task snapshots, for pages that open mid-task and for polling clients."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CurrentUser, Services
from api.errors import ApiError
from progress.snapshot import TaskSnapshot

router = APIRouter(prefix="/api/v1/tasks", tags=["tasks"])


@router.get(
    "/{task_id}", response_model=TaskSnapshot, responses={404: {"description": "no such task"}}
)
async def task_snapshot(task_id: str, principal: CurrentUser, services: Services) -> TaskSnapshot:
    """The latest state of one of the caller's tasks; 404 for any task not theirs."""
    snapshot = await services.store.task_snapshot(principal.user_id, task_id)
    if snapshot is None:
        raise ApiError(404, "task_not_found", "no such task")
    return snapshot
