"""Issuing an sse_token under the abuse limits: bans, per-IP and per-user buckets."""

from __future__ import annotations

from api.auth.tokens import Principal
from api.services import ApiServices


async def issue_sse_token(
    services: ApiServices, bearer: str | None, client_ip: str
) -> tuple[str, int]:
    """A token and its lifetime; ApiError 401 (bad JWT), 403 (banned IP), 429 (rate);
    StoreUnavailable (503) while Redis is down: the token could not be spent anyway."""
    services.redis_health.check()

    async def authenticate() -> Principal:
        return await services.tokens.principal_from_jwt(bearer)

    principal = await services.guard.authenticated("sse_token", client_ip, authenticate)
    await services.guard.admit("sse_token", client_ip, principal.user_id)
    # The limits let the request through when Redis failed them; if that marked Redis down,
    # say so now rather than hand out a token no open can spend.
    services.redis_health.check()
    return await services.tokens.issue_sse_token(principal)
