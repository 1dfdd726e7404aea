"""Operators' view of the audit of important events: list, and resend failed pushes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import AdminUser, AdminWriter, Services
from api.errors import COMMON_ERRORS, ApiError
from api.stream.archive import Archive
from api.text import ID_PATTERN, PathRowId

router = APIRouter(
    prefix="/api/v1/admin/audit",
    tags=["admin"],
    responses={**COMMON_ERRORS, 403: {"description": "the JWT lacks the admin role"}},
)


class AuditPage(BaseModel):
    """Audit rows, newest first, with their events opened (sensitive fields readable)."""

    events: list[dict[str, Any]]


class Resent(BaseModel):
    """How many audited events were pushed again."""

    resent: int


def _archive(services: Services) -> Archive:
    if services.archive is None:
        raise ApiError(503, "archive_unavailable", "no audit database is configured")
    return services.archive


@router.get("", response_model=AuditPage)
async def list_audit(
    _: AdminUser,
    services: Services,
    status: Annotated[Literal["pending", "published", "failed"] | None, Query()] = None,
    user_id: Annotated[str | None, Query(max_length=64, pattern=ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    """Audited important events, newest first; ``status=failed`` lists failed pushes."""
    return AuditPage(events=await _archive(services).recent(status, user_id, limit))


@router.post("/resend-failed", response_model=Resent)
async def resend_failed(_: AdminWriter, services: Services) -> Resent:
    """Push every failed event again (503 if Redis is still down)."""
    return Resent(resent=await _archive(services).resend(None))


@router.post(
    "/{audit_id}/resend",
    response_model=Resent,
    responses={404: {"description": "no such audit row"}},
)
async def resend_one(audit_id: PathRowId, _: AdminWriter, services: Services) -> Resent:
    """Push one audited event again, whatever its status (duplicates are refused by Redis)."""
    resent = await _archive(services).resend([audit_id])
    if resent == 0:
        raise ApiError(404, "audit_not_found", "no such audit row")
    return Resent(resent=resent)
