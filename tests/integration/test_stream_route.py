"""The stream route's lean handler (api/stream/shortcut.py) answers like FastAPI's: real uvicorn."""

from __future__ import annotations

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
    with ApiServer(f"{redis_server.url}/0", SSE_DOCS_ENABLED="true") as server:
        yield server


@pytest.mark.parametrize("interval", ["60001", "-1", "soon", ""])
def test_a_bad_progress_interval_gets_the_validation_error_and_spends_the_token(
    api: ApiServer, user_id: str, interval: str
) -> None:
    token = api.sse_token(api.jwt(user_id))
    refused = httpx.get(f"{api.url}{STREAM}?sse_token={token}&progress_interval_ms={interval}")
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "validation_error"
    assert list(error["fields"]) == ["progress_interval_ms"]
    # Single use means single use (issue 15): a token presented with a refused open is spent.
    again = httpx.get(f"{api.url}{STREAM}?sse_token={token}&progress_interval_ms=60000")
    assert (again.status_code, again.json()["error"]["code"]) == (401, "token_reused")


def test_refusals_keep_their_json_body_and_a_repeated_token_counts_once(
    api: ApiServer, user_id: str
) -> None:
    missing = httpx.get(f"{api.url}{STREAM}")
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "token_missing"
    assert missing.headers["www-authenticate"] == "Bearer"
    token = api.sse_token(api.jwt(user_id))
    bad_cursor = httpx.get(f"{api.url}{STREAM}?sse_token={token}&last_event_id=v9,nope")
    assert bad_cursor.status_code == 400
    assert bad_cursor.json()["error"]["code"] == "invalid_cursor"
    # As FastAPI reads a repeated query parameter: the last value (here, a good token).
    fresh = api.sse_token(api.jwt(user_id))
    client = SseClient(f"{api.url}{STREAM}?sse_token=garbage&sse_token={fresh}")
    try:
        client.wait_for(lambda events: any(e.event == "connection.established" for e in events))
    finally:
        client.close()


def test_the_schema_documents_the_stream_route(api: ApiServer) -> None:
    schema = httpx.get(f"{api.url}/openapi.json")
    assert schema.status_code == 200
    operation = schema.json()["paths"][STREAM]["get"]
    names = {(p["in"], p["name"]) for p in operation["parameters"]}
    assert names == {
        ("query", "sse_token"),
        ("query", "last_event_id"),
        ("header", "Last-Event-ID"),
        ("query", "progress_interval_ms"),
    }
    assert "text/event-stream" in operation["responses"]["200"]["content"]
