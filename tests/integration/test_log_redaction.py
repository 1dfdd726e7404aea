"""Issue 15 (security 6): no token in the server's log however the URL spells it, and a token
presented with a refused open is spent all the same (the 422 case: test_stream_route.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from progress.redis_server import RedisServer
from tests.servers import ApiServer
from tests.sse_client import SseClient

pytestmark = pytest.mark.integration

STREAM = "/api/v1/events/stream"


@pytest.fixture(scope="module")
def api(redis_server: RedisServer) -> Iterator[ApiServer]:
    with ApiServer(f"{redis_server.url}/0") as server:
        yield server


def logged(api: ApiServer, needle: str, timeout: float = 10) -> str:
    """The server's log once it holds ``needle`` (access lines are written asynchronously)."""
    deadline = time.monotonic() + timeout
    while needle not in api.log_text:
        assert time.monotonic() < deadline, f"{needle!r} never logged"
        time.sleep(0.05)
    return api.log_text


def test_a_percent_encoded_token_name_is_redacted(api: ApiServer, user_id: str) -> None:
    token = api.sse_token(api.jwt(user_id))
    client = SseClient(f"{api.url}{STREAM}?sse_toke%6E={token}&marker=pct-{user_id}")
    try:
        assert client.wait_open() == 200  # the server reads the encoded name as sse_token
    finally:
        client.close()
    text = logged(api, f"marker=pct-{user_id}")
    assert token not in text
    assert f"sse_toke%6E=[redacted]&marker=pct-{user_id}" in text


def test_a_jwt_in_any_parameter_is_redacted(api: ApiServer, user_id: str) -> None:
    jwt = api.jwt(user_id)
    history = f"{api.url}/api/v1/events/history"
    response = httpx.get(
        f"{history}?note={jwt}&marker=jwt-{user_id}",
        headers={"Authorization": f"Bearer {jwt}"},
        timeout=5,
    )
    assert response.status_code == 200
    text = logged(api, f"marker=jwt-{user_id}")
    assert jwt not in text
    assert f"note=[redacted]&marker=jwt-{user_id}" in text


def test_a_token_presented_with_a_bad_cursor_is_spent(api: ApiServer, user_id: str) -> None:
    token = api.sse_token(api.jwt(user_id))
    refused = httpx.get(
        f"{api.url}{STREAM}", params={"sse_token": token}, headers={"Last-Event-ID": "x"}
    )
    assert refused.status_code == 400
    again = httpx.get(f"{api.url}{STREAM}", params={"sse_token": token}, timeout=5)
    assert (again.status_code, again.json()["error"]["code"]) == (401, "token_reused")
