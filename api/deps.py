"""Dependencies routes declare: the services, and who is calling."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.clientip import client_ip
from api.errors import ApiError
from api.security import Principal
from api.services import ApiServices

_bearer = HTTPBearer(auto_error=False, description="A platform JWT (HS256)")


def get_services(request: Request) -> ApiServices:
    """The app's services, built by its lifespan."""
    services: ApiServices = request.app.state.services
    return services


Services = Annotated[ApiServices, Depends(get_services)]


def client_address(request: Request, services: Services) -> str:
    """The caller's address (X-Forwarded-For only from trusted proxies)."""
    return client_ip(request, services.trusted_proxies)


ClientIp = Annotated[str, Depends(client_address)]


def bearer_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str | None:
    """The raw Bearer token, unchecked (for routes that check it under the abuse guard)."""
    return credentials.credentials if credentials else None


BearerToken = Annotated[str | None, Depends(bearer_token)]


def current_principal(
    services: Services,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller of a Bearer JWT; 401 with the reason otherwise."""
    return services.tokens.principal_from_jwt(credentials.credentials if credentials else None)


CurrentUser = Annotated[Principal, Depends(current_principal)]


ADMIN_ROLE = "admin"


def admin_principal(principal: CurrentUser) -> Principal:
    """The caller, when their JWT carries the ``admin`` role; 403 otherwise."""
    if ADMIN_ROLE not in principal.roles:
        raise ApiError(403, "forbidden", "this endpoint needs the admin role")
    return principal


AdminUser = Annotated[Principal, Depends(admin_principal)]
