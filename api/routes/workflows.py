"""Workflow snapshots: a page that opens (or reconnects) mid-workflow draws its bar at once."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CurrentUser, Services
from api.errors import COMMON_ERRORS, ApiError
from api.text import PathId
from progress.events import WorkflowProgress

router = APIRouter(prefix="/api/v1/workflows", tags=["workflows"], responses=COMMON_ERRORS)


@router.get(
    "/{workflow_id}",
    response_model=WorkflowProgress,
    responses={404: {"description": "no such workflow"}},
)
async def workflow_snapshot(
    workflow_id: PathId, principal: CurrentUser, services: Services
) -> WorkflowProgress:
    """The current counts of one of the caller's workflows, shaped like ``workflow.progress``;
    404 for any workflow not theirs (its keys live under the caller's own tag)."""
    snapshot = await services.store.workflow_snapshot(principal.user_id, workflow_id)
    if snapshot is None:
        raise ApiError(404, "workflow_not_found", "no such workflow")
    return snapshot
