"""Dependencies routes declare: the services, and who is calling."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth.client_ip import client_ip
from api.auth.rate_limits import WRITE
from api.auth.tokens import Principal
from api.errors import ApiError
from api.services import ApiServices

_bearer = HTTPBearer(auto_error=False, description="A platform JWT (HS256)")


# The dependencies are ``async def`` although they never await: FastAPI runs a plain ``def``
# dependency in a worker thread, one thread hop per request (measured on every stream open).


async def get_services(request: Request) -> ApiServices:
    """The app's services, built by its lifespan."""
    services: ApiServices = request.app.state.services
    return services


Services = Annotated[ApiServices, Depends(get_services)]


async def client_address(request: Request, services: Services) -> str:
    """The caller's address (X-Forwarded-For only from trusted proxies)."""
    return client_ip(request, services.trusted_proxies)


ClientIp = Annotated[str, Depends(client_address)]


async def bearer_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str | None:
    """The raw Bearer token, unchecked (for routes that check it under the abuse guard)."""
    return credentials.credentials if credentials else None


BearerToken = Annotated[str | None, Depends(bearer_token)]


async def current_principal(
    services: Services,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller of a Bearer JWT; 401 with the reason otherwise."""
    return await services.tokens.principal_from_jwt(
        credentials.credentials if credentials else None
    )


CurrentUser = Annotated[Principal, Depends(current_principal)]


async def writing_principal(principal: CurrentUser, services: Services, ip: ClientIp) -> Principal:
    """The caller of a write request, charged to their write budget; 429 once it is spent."""
    await services.guard.admit_user(WRITE, ip, principal.user_id)
    return principal


#: What every POST/PUT/PATCH/DELETE route takes instead of ``CurrentUser``.
WritingUser = Annotated[Principal, Depends(writing_principal)]


ADMIN_ROLE = "admin"


async def admin_principal(principal: CurrentUser) -> Principal:
    """The caller, when their JWT carries the ``admin`` role; 403 otherwise."""
    if ADMIN_ROLE not in principal.roles:
        raise ApiError(403, "forbidden", "this endpoint needs the admin role")
    return principal


AdminUser = Annotated[Principal, Depends(admin_principal)]


async def admin_writer(admin: AdminUser, services: Services, ip: ClientIp) -> Principal:
    """An admin's write request, charged to their write budget like anyone's."""
    await services.guard.admit_user(WRITE, ip, admin.user_id)
    return admin


#: What admin POST/PUT/PATCH/DELETE routes take instead of ``AdminUser``.
AdminWriter = Annotated[Principal, Depends(admin_writer)]
