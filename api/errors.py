"""The API's errors and their one translation to HTTP (JSON bodies that say what is wrong).

ApiError(status, code, message)       raised by services and dependencies
progress.InvalidCursor        -> 400  invalid_cursor
progress.StoreUnavailable     -> 503  store_unavailable
database errors (contracts.DATABASE_UNAVAILABLE)
                              -> 503  database_unavailable, Retry-After
RequestValidationError        -> 422  validation_error (fields named)
HTTPException (no route)      -> 404  not_found / 405 method_not_allowed
HTTPException (body limit)    -> 413  body_too_large (api.ops.body_limit)
TooManyActiveChapters         -> 429  too_many_active_chapters (Retry-After)
UnknownChapters               -> 422  unknown_chapters (``fields.chapters`` lists them)
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from progress.errors import InvalidCursor, StoreUnavailable
from workers.contracts import (
    DATABASE_UNAVAILABLE,
    NovelNotFound,
    TaskNotFound,
    TooManyActiveChapters,
    UnknownChapters,
)

log = logging.getLogger("api.errors")

#: Seconds a client is told to wait before retrying a request the database could not serve.
DATABASE_RETRY_AFTER_SECONDS = 5


class ErrorDetail(BaseModel):
    """What went wrong: a stable code and a message for people."""

    code: str
    message: str
    fields: dict[str, str] | None = None


class ErrorBody(BaseModel):
    """The JSON body of every error response."""

    error: ErrorDetail


#: OpenAPI entries for the errors every authenticated endpoint may return.
COMMON_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "missing, malformed, expired or bad token"},
    422: {"model": ErrorBody, "description": "invalid input; `fields` names each field"},
    503: {"model": ErrorBody, "description": "Redis or the database unavailable (Retry-After)"},
}


class ApiError(Exception):
    """An error with an HTTP status, a stable machine code and a human message."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def unauthorized(code: str, message: str) -> ApiError:
    """401 with a WWW-Authenticate header."""
    return ApiError(401, code, message, {"WWW-Authenticate": "Bearer"})


def error_body(code: str, message: str, **extra: object) -> dict[str, object]:
    """The JSON body of every error response."""
    return {"error": {"code": code, "message": message, **extra}}


BODY_TOO_LARGE = "body_too_large"
#: Seconds a client refused for active chapters is told to wait (a chapter takes about this).
ACTIVE_CHAPTERS_RETRY = 30
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: BODY_TOO_LARGE}
#: What a client is told when Redis does not answer (the cause is logged).
STORE_UNAVAILABLE = "the event store is unavailable; retry later"


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(error_body(exc.code, exc.message), exc.status, headers=exc.headers)


async def _invalid_cursor(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(error_body("invalid_cursor", str(exc)), 400)


async def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # The cause (addresses, ports, driver messages) is for operators: the log, not the body.
    log.warning("%s %s: %s", request.method, request.url.path, exc)
    body = error_body("store_unavailable", STORE_UNAVAILABLE)
    return JSONResponse(body, 503, headers={"Retry-After": str(random.randint(2, 10))})


async def _database_unavailable(_: Request, exc: Exception) -> JSONResponse:
    # The driver's message names hosts and ports: log it, never send it.
    log.warning("database unavailable: %s", exc)
    return JSONResponse(
        error_body("database_unavailable", "the database is unavailable; retry shortly"),
        503,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = {
        ".".join(str(p) for p in err["loc"] if p not in ("body", "query", "path")): err["msg"]
        for err in exc.errors()
    }
    message = "; ".join(f"{field}: {msg}" for field, msg in fields.items())
    return JSONResponse(error_body("validation_error", message, fields=fields), 422)


async def _not_found(_: Request, exc: Exception) -> JSONResponse:
    kind = "task" if isinstance(exc, TaskNotFound) else "novel"
    return JSONResponse(error_body(f"{kind}_not_found", f"no such {kind}"), 404)


async def _too_many_chapters(_: Request, exc: Exception) -> JSONResponse:
    body = error_body("too_many_active_chapters", str(exc))
    return JSONResponse(body, 429, headers={"Retry-After": str(ACTIVE_CHAPTERS_RETRY)})


async def _unknown_chapters(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UnknownChapters)
    listed = ", ".join(str(n) for n in exc.numbers)
    body = error_body("unknown_chapters", str(exc), fields={"chapters": f"unknown: {listed}"})
    return JSONResponse(body, 422)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, exc.headers)


ErrorHandler = Callable[[Request, Exception], Awaitable[JSONResponse]]

#: The translations above, by exception class: the app registers them, and the stream
#: shortcut (``api.stream.shortcut``), which runs outside the app's exception handling, answers
#: its errors with them too.
ERROR_HANDLERS: dict[type[Exception], ErrorHandler] = {
    StarletteHTTPException: _http_error,
    ApiError: _api_error,
    NovelNotFound: _not_found,
    TaskNotFound: _not_found,
    TooManyActiveChapters: _too_many_chapters,
    UnknownChapters: _unknown_chapters,
    InvalidCursor: _invalid_cursor,
    StoreUnavailable: _store_unavailable,
    RequestValidationError: _validation,
    **dict.fromkeys(DATABASE_UNAVAILABLE, _database_unavailable),
}


def install_error_handlers(app: FastAPI) -> None:
    """Register the translations above on ``app``."""
    for error, handler in ERROR_HANDLERS.items():
        app.add_exception_handler(error, handler)


async def error_response(request: Request, exc: Exception) -> JSONResponse | None:
    """The response the app gives ``exc`` (the handler of its most specific class, looked up
    as the app's exception handling does), None for an exception no handler takes."""
    for cls in type(exc).__mro__:
        handler = ERROR_HANDLERS.get(cls)
        if handler is not None:
            return await handler(request, exc)
    return None
