"""Issue 15 (4): every write endpoint under /api/v1 charges the caller's write budget."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from api.deps import admin_writer, writing_principal
from api.main import ROUTERS

WRITES = {"POST", "PUT", "PATCH", "DELETE"}
#: Budgeted on their own: sse-token by its per-IP and per-user buckets; dev-token has no
#: caller and exists only with SSE_DEV_TOKENS_ENABLED.
OWN_LIMITS = {"/api/v1/auth/sse-token", "/api/v1/auth/dev-token"}


def calls(dependant: Dependant) -> Iterator[object]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from calls(sub)


def test_every_write_route_charges_the_write_budget() -> None:
    write_routes = [
        route
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute) and route.methods & WRITES
    ]
    assert len(write_routes) >= 12
    for route in write_routes:
        if route.path in OWN_LIMITS:
            continue
        charged = {writing_principal, admin_writer} & set(calls(route.dependant))
        assert charged, f"{sorted(route.methods)} {route.path} has no write budget"
