"""The caller's notification preferences, applied by every stream at relay time."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CurrentUser, Services, WritingUser
from api.errors import COMMON_ERRORS
from api.preferences import NotificationPreferences

router = APIRouter(prefix="/api/v1/me", tags=["preferences"], responses=COMMON_ERRORS)


@router.get("/notification-preferences", response_model=NotificationPreferences)
async def get_preferences(principal: CurrentUser, services: Services) -> NotificationPreferences:
    """The caller's preferences (defaults: every level, nothing muted)."""
    return await services.preferences.get(principal.user_id)


@router.put("/notification-preferences", response_model=NotificationPreferences)
async def put_preferences(
    body: NotificationPreferences, principal: WritingUser, services: Services
) -> NotificationPreferences:
    """Replace the caller's preferences; open streams apply them at once, on every instance."""
    await services.preferences.put(principal.user_id, body)
    return body
