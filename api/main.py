"""The ASGI app: ``uvicorn api.main:app`` (settings from the environment), or
``create_app(settings)`` for tests. Importing this module creates nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from api.auth.authz import Authorizer
from api.errors import install_error_handlers
from api.frontend import frontend_app
from api.ops.body_limit import BodyLimit
from api.ops.gc_tuning import freeze_long_lived
from api.ops.http_metrics import CountResponses
from api.ops.json_logs import install_json_logs
from api.ops.log_redaction import install_redaction
from api.routes import (
    admin,
    admin_audit,
    auth,
    events,
    invitations,
    metrics,
    novels,
    preferences,
    realtime,
    tasks,
    workflows,
)
from api.services import ApiServices
from api.settings import ApiSettings
from api.stream.response import SERVER_SEND, supervise_streams
from api.stream.shortcut import StreamShortcut

log = logging.getLogger("api.main")


class RealtimeApp(FastAPI):
    """FastAPI keeping the server's own ``send`` in the scope, so streams can write frames
    through it without the middleware wrappers (``api.stream.response.DirectWriter``)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[SERVER_SEND] = send
        await super().__call__(scope, receive, send)


#: Every router of the app, in the order they are included.
ROUTERS = tuple(
    module.router
    for module in (
        auth,
        events,
        tasks,
        novels,
        invitations,
        metrics,
        admin,
        preferences,
        realtime,
        admin_audit,
        workflows,
    )
)


def create_app(
    settings: ApiSettings | None = None, authorizer: Authorizer | None = None
) -> FastAPI:
    """An app whose lifespan builds its services from ``settings`` (env when None)."""
    resolved = settings or ApiSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        install_redaction()
        if resolved.log_json:
            install_json_logs(resolved.instance_id)
        for warning in resolved.startup_warnings():
            log.warning(warning, extra={"reason": "insecure_setting"})
        services = ApiServices.build(resolved, authorizer)
        await services.start()
        app.state.services = services
        watcher = asyncio.create_task(_end_streams_on_shutdown(services))
        supervisor = asyncio.create_task(
            supervise_streams(
                services.shutdown_event, services.open_streams, resolved.send_timeout_seconds
            )
        )
        freezer = asyncio.create_task(
            freeze_long_lived(resolved.gc_freeze_seconds, resolved.gc_full_seconds)
        )
        try:
            yield
        finally:
            watcher.cancel()
            supervisor.cancel()
            freezer.cancel()
            await services.close()

    app = RealtimeApp(
        title="InfiniteScribe Realtime",
        version="0.1.0",
        description="Live progress of AI creation tasks over Server-Sent Events.",
        lifespan=lifespan,
        docs_url="/docs" if resolved.docs_enabled else None,
        redoc_url="/redoc" if resolved.docs_enabled else None,
        openapi_url="/openapi.json" if resolved.docs_enabled else None,
        telemetry={
            "tracing": resolved.otel_enabled,
            "metrics": resolved.otel_enabled,
            "logs": resolved.otel_enabled,
        },
    )
    install_error_handlers(app)
    # Middleware added first runs innermost. Ordinary stream opens skip routing: inside the
    # response counter, outside the exception handling (it answers its errors itself).
    app.add_middleware(StreamShortcut)
    # Inside the response counter (a 413 is counted), outside everything that reads a body.
    app.add_middleware(BodyLimit, max_bytes=resolved.max_body_bytes)
    app.add_middleware(CountResponses)
    for router in ROUTERS:
        app.include_router(router)
    spa = frontend_app(resolved.frontend_dir)
    if spa is not None:
        app.mount("/", spa, name="frontend")
    return app


async def _end_streams_on_shutdown(services: ApiServices) -> None:
    await services.shutdown_event.wait()
    services.hub.broadcast_shutdown()


def __getattr__(name: str) -> Any:
    if name == "app":
        return create_app()
    raise AttributeError(name)
