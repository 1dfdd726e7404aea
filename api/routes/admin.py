"""Operator endpoints: system notifications and errors (admin role only)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, status
from pydantic import BaseModel

from api.deps import AdminUser, AdminWriter, Services
from api.errors import COMMON_ERRORS
from api.notifications import ErrorRequest, NotificationRequest, build_events, level_of
from progress.outbox import Outgoing

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], responses=COMMON_ERRORS)
log = logging.getLogger("api.admin")


class Sent(BaseModel):
    """What was stored and pushed."""

    type: str
    events: int
    event_ids: list[str]


async def _send(
    services: Services, admin: AdminUser, request: NotificationRequest | ErrorRequest
) -> Sent:
    events = build_events(request)
    batch: list[Outgoing] = [(event, ()) for event in events]
    if services.archive is not None:
        await services.archive.publish(batch)  # journaled in SQL first: survives a Redis loss
    else:
        await services.store.append_many(batch)
    services.metrics.notification_sent(events[0].type, level_of(request))
    log.warning(
        "%s sent (%s) to %s",
        events[0].type,
        level_of(request),
        request.target.audience,
        extra={"user_id": admin.user_id, "reason": level_of(request)},
    )
    return Sent(
        type=events[0].type, events=len(events), event_ids=[str(e.event_id) for e in events]
    )


@router.post("/notifications", status_code=status.HTTP_202_ACCEPTED, response_model=Sent)
async def send_notification(
    body: NotificationRequest, admin: AdminWriter, services: Services
) -> Sent:
    """Send a ``system.notification`` (info, warning, critical) to everyone, users or a session."""
    return await _send(services, admin, body)


@router.post("/errors", status_code=status.HTTP_202_ACCEPTED, response_model=Sent)
async def send_error(body: ErrorRequest, admin: AdminWriter, services: Services) -> Sent:
    """Send a ``system.error`` (severity, affected scope) to everyone, users or a session."""
    return await _send(services, admin, body)
