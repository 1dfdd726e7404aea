"""The API's errors and their one translation to HTTP (JSON bodies that say what is wrong).

ApiError(status, code, message)       raised by services and dependencies
progress.InvalidCursor        -> 400  invalid_cursor
progress.StoreUnavailable     -> 503  store_unavailable
RequestValidationError        -> 422  validation_error (fields named)
HTTPException (no route)      -> 404  not_found / 405 method_not_allowed
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from progress.errors import InvalidCursor, StoreUnavailable
from workers.contracts import NovelNotFound, TaskNotFound


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
    503: {"model": ErrorBody, "description": "Redis unavailable"},
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


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}
#: What a client is told when Redis does not answer (the cause is logged).
STORE_UNAVAILABLE = "the event store is unavailable; retry later"
log = logging.getLogger("api.errors")


def install_error_handlers(app: FastAPI) -> None:
    """Register the translations above on ``app``."""

    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return JSONResponse(error_body(exc.code, exc.message), exc.status, headers=exc.headers)

    async def invalid_cursor(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(error_body("invalid_cursor", str(exc)), 400)

    async def store_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # The cause (addresses, ports, driver messages) is for operators: the log, not the body.
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse(error_body("store_unavailable", STORE_UNAVAILABLE), 503)

    async def validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        fields = {
            ".".join(str(p) for p in err["loc"] if p not in ("body", "query", "path")): err["msg"]
            for err in exc.errors()
        }
        message = "; ".join(f"{field}: {msg}" for field, msg in fields.items())
        return JSONResponse(error_body("validation_error", message, fields=fields), 422)

    async def not_found(_: Request, exc: Exception) -> JSONResponse:
        kind = "task" if isinstance(exc, TaskNotFound) else "novel"
        return JSONResponse(error_body(f"{kind}_not_found", f"no such {kind}"), 404)

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, exc.headers)

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(NovelNotFound, not_found)
    app.add_exception_handler(TaskNotFound, not_found)
    app.add_exception_handler(InvalidCursor, invalid_cursor)
    app.add_exception_handler(StoreUnavailable, store_unavailable)
    app.add_exception_handler(RequestValidationError, validation)
