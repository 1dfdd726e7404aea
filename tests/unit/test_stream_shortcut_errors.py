"""The stream shortcut runs outside the app's exception handling: the errors of an open it
serves get exactly the response the app's handlers give the same error from the endpoint."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from api.errors import install_error_handlers, unauthorized
from api.stream import shortcut
from api.stream.shortcut import STREAM_PATH, StreamShortcut
from progress.errors import InvalidCursor, StoreUnavailable

ERRORS = {
    "token": lambda: unauthorized("token_invalid", "the token is not valid: x"),
    "cursor": lambda: InvalidCursor("not a cursor: v9,nope"),
    "store": lambda: StoreUnavailable("Redis at 127.0.0.1:1 refused"),
}


def _app(error: Exception, shortcut: bool) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get(STREAM_PATH)
    async def endpoint() -> None:
        # Behind the shortcut the endpoint must not be reached: a 500 would show it.
        raise AssertionError("endpoint reached") if shortcut else error

    if shortcut:
        app.add_middleware(StreamShortcut)
    app.state.services = SimpleNamespace(trusted_proxies=())
    return app


async def _get(app: FastAPI, query: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        return await client.get(f"{STREAM_PATH}?{query}")


def _answer(app: FastAPI) -> tuple[int, object, dict[str, str]]:
    response = asyncio.run(_get(app, "sse_token=t"))
    # Retry-After is random (2-10 s): compare its presence only.
    headers = {k: v for k, v in response.headers.items() if k != "retry-after"}
    headers["retry-after"] = str("retry-after" in response.headers)
    return response.status_code, response.json(), headers


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_an_open_refused_by_the_shortcut_answers_as_the_endpoint_would(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    error = ERRORS[name]()

    async def refused(*_: object) -> None:
        raise error

    monkeypatch.setattr(shortcut, "open_stream", refused)
    served = _answer(_app(error, shortcut=True))
    assert served == _answer(_app(error, shortcut=False))
    assert served[0] in (400, 401, 503)


def test_an_error_no_handler_takes_is_a_500(monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(shortcut, "open_stream", broken)
    app = _app(RuntimeError("not reached"), shortcut=True)
    assert asyncio.run(_get(app, "sse_token=t")).status_code == 500
