"""Token endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.auth.issuance import issue_sse_token as issue_guarded
from api.auth.tokens import mint_jwt
from api.deps import BearerToken, ClientIp, CurrentUser, Services
from api.errors import COMMON_ERRORS, ApiError
from api.text import Line
from progress.events import Identifier

router = APIRouter(prefix="/api/v1/auth", tags=["auth"], responses=COMMON_ERRORS)


class SseToken(BaseModel):
    """A single-use token for opening one stream."""

    sse_token: str
    expires_in: int


class Me(BaseModel):
    """The caller as the server reads their JWT (``SSE_JWT_SUBJECT_CLAIM``,
    ``SSE_JWT_ROLES_CLAIM``): what a page should show and decide on, rather than its own
    reading of the token."""

    user_id: str
    session_id: str | None
    roles: list[str]
    expires_at: float


class DevTokenRequest(BaseModel):
    """Who the development JWT is for."""

    user_id: Identifier
    session_id: Identifier | None = None
    ttl_seconds: int = Field(default=3600, ge=10, le=7 * 24 * 3600)
    roles: list[Annotated[Line, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=64
    )


class DevToken(BaseModel):
    """A platform-style JWT for development and tests."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int


@router.post(
    "/sse-token",
    response_model=SseToken,
    responses={
        403: {"description": "this address is banned for a while (see Retry-After)"},
        429: {"description": "too many token requests (see Retry-After)"},
    },
)
async def issue_sse_token(services: Services, bearer: BearerToken, ip: ClientIp) -> SseToken:
    """Trade a Bearer JWT for an sse_token (one stream, bound to user and session)."""
    token, lifetime = await issue_guarded(services, bearer, ip)
    return SseToken(sse_token=token, expires_in=lifetime)


@router.post("/dev-token", response_model=DevToken)
async def issue_dev_token(body: DevTokenRequest, services: Services) -> DevToken:
    """Mint a JWT for any user. Only when SSE_DEV_TOKENS_ENABLED=true (demo and tests)."""
    if not services.settings.dev_tokens_enabled:
        raise ApiError(404, "not_found", "development tokens are disabled")
    token = mint_jwt(
        services.settings.jwt_secret,
        body.user_id,
        body.session_id,
        body.ttl_seconds,
        tuple(body.roles),
    )
    return DevToken(access_token=token, expires_in=body.ttl_seconds)


@router.get("/me", response_model=Me)
async def me(principal: CurrentUser) -> Me:
    """Who the Bearer JWT names: user id, session, roles and expiry (epoch seconds)."""
    return Me(
        user_id=principal.user_id,
        session_id=principal.session_id,
        roles=list(principal.roles),
        expires_at=principal.expires_at,
    )
