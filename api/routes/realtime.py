"""The realtime mode: what browsers ask before they connect, and what operators change."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import AdminWriter, CurrentUser, Services
from api.errors import COMMON_ERRORS
from api.realtime_mode import Mode, ModeRule, mode_for

router = APIRouter(prefix="/api/v1/realtime", tags=["realtime"], responses=COMMON_ERRORS)


class RealtimeConfig(BaseModel):
    """How the caller's browser should get its events now."""

    mode: Mode
    poll_interval_seconds: float
    active_poll_interval_seconds: float
    heartbeat_seconds: float
    flower_url: str | None


class ModeChange(BaseModel):
    """A new rule: ``polling`` for ``percent`` of users (stable per user), or ``sse`` for all."""

    mode: Mode
    percent: int = Field(default=100, ge=0, le=100)


@router.get("/config", response_model=RealtimeConfig)
async def realtime_config(principal: CurrentUser, services: Services) -> RealtimeConfig:
    """The caller's mode under the current rule, and the intervals to use."""
    settings = services.settings
    return RealtimeConfig(
        mode=mode_for(principal.user_id, services.hub.mode_rule, settings.enabled),
        poll_interval_seconds=settings.poll_interval_seconds,
        active_poll_interval_seconds=settings.active_poll_interval_seconds,
        heartbeat_seconds=settings.heartbeat_seconds,
        flower_url=settings.flower_url,
    )


@router.put("/config", response_model=ModeRule, responses={403: {"description": "not an admin"}})
async def change_realtime_mode(body: ModeChange, _: AdminWriter, services: Services) -> ModeRule:
    """Store a new rule; every instance moves the affected streams at once."""
    return await services.modes.set(body.mode, body.percent)
