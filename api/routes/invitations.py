"""The caller's pending invitations to read other users' novels."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import CurrentUser
from api.errors import COMMON_ERRORS
from workers import contracts

router = APIRouter(prefix="/api/v1/invitations", tags=["novels"], responses=COMMON_ERRORS)


class InvitationOut(BaseModel):
    """A novel the caller was invited to read; accept with POST /novels/{id}/membership."""

    model_config = {"from_attributes": True}

    novel_id: str
    title: str
    owner_id: str
    created_at: datetime


@router.get("", response_model=list[InvitationOut])
def list_invitations(principal: CurrentUser) -> list[InvitationOut]:
    """Invitations not accepted yet, newest novel first (at most 100)."""
    return [InvitationOut.model_validate(i) for i in contracts.list_invitations(principal.user_id)]
