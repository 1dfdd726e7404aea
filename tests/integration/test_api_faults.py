"""Issue 15: an API instance that crashes, and Redis going away under the API. Real uvicorn
instances, real Redis, real HTTP on loopback."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from progress.redis_server import RedisServer
from tests.integration.test_sse_stream import open_stream
from tests.servers import ApiServer
from tests.sse_client import SseClient

pytestmark = pytest.mark.integration

#: The user retries an open several times a second below: their own buckets out of the way.
USER_RETRIES = {
    "SSE_RATE_TOKEN_USER_BURST": "1000",
    "SSE_RATE_STREAM_USER_BURST": "1000",
}


def try_open(api: ApiServer, jwt: str) -> SseClient:
    """A stream open with a fresh token, its status read (the client stays open on 200)."""
    client = SseClient(f"{api.url}/api/v1/events/stream?sse_token={api.sse_token(jwt)}")
    client.wait_open()
    if client.status != 200:
        client.close()
    return client


# --- 9. a crashed instance's leases ----------------------------------------------------------


def test_a_crashed_instances_streams_stop_counting_against_the_user_within_seconds(
    redis_url: str, user_id: str
) -> None:
    first = ApiServer(redis_url, **USER_RETRIES).start()
    try:
        with ApiServer(redis_url, **USER_RETRIES) as second:
            jwt = second.jwt(user_id)
            held = [open_stream(first, jwt), open_stream(first, jwt)]
            assert try_open(second, jwt).status == 429, "the cap holds across live instances"

            first.stop(signal.SIGKILL)
            crashed = time.monotonic()
            for stream in held:
                stream.close()
            reopened: list[SseClient] = []
            statuses: list[int | None] = []
            try:
                while len(reopened) < 2 and time.monotonic() - crashed < 30:
                    client = try_open(second, jwt)
                    statuses.append(client.status)
                    if client.status == 200:
                        reopened.append(client)
                    else:
                        assert client.status == 429, client.body
                        time.sleep(0.1)
                took = time.monotonic() - crashed
                assert len(reopened) == 2, f"still refused 30 s after the crash: {statuses}"
                assert took < 10, f"the user was locked out for {took:.1f} s"
                assert try_open(second, jwt).status == 429, "the cap holds on the live instance"
            finally:
                for stream in reopened:
                    stream.close()
    finally:
        first.close()


# --- 12. Redis down --------------------------------------------------------------------------


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def timed(request: httpx.Request) -> tuple[httpx.Response, float]:
    with httpx.Client(timeout=10) as client:
        started = time.monotonic()
        response = client.send(request)
        return response, time.monotonic() - started


def assert_fast_503(response: httpx.Response, took: float, redis: RedisServer) -> None:
    assert response.status_code == 503, response.text
    assert took < 1.5, f"answered after {took:.2f} s"
    assert int(response.headers["Retry-After"]) >= 1
    body = response.json()
    assert body["error"]["code"] == "store_unavailable"
    assert str(redis.port) not in response.text and "127.0.0.1" not in response.text


def test_with_redis_down_the_api_says_503_at_once_and_recovers_when_redis_returns(
    own_redis: RedisServer, user_id: str
) -> None:
    with ApiServer(f"{own_redis.url}/0", **USER_RETRIES) as api:
        jwt = api.jwt(user_id)
        bearer = {"Authorization": f"Bearer {jwt}"}
        spare_token = api.sse_token(jwt)
        live = open_stream(api, jwt)
        try:
            own_redis.stop()

            token_request = httpx.Request(
                "POST", f"{api.url}/api/v1/auth/sse-token", headers=bearer
            )
            stream_request = httpx.Request(
                "GET", f"{api.url}/api/v1/events/stream?sse_token={spare_token}"
            )
            health_request = httpx.Request("GET", f"{api.url}/api/v1/events/health")
            for request in (token_request, stream_request):
                response, took = timed(request)
                assert_fast_503(response, took, own_redis)
            response, took = timed(health_request)
            assert response.status_code == 503, response.text
            assert took < 1.5, f"health answered after {took:.2f} s"
            assert response.json()["status"] == "unavailable"
            assert str(own_redis.port) not in response.text

            own_redis.start()
            back = time.monotonic()
            while True:
                response = httpx.post(f"{api.url}/api/v1/auth/sse-token", headers=bearer)
                if response.status_code == 200:
                    break
                assert response.status_code == 503, response.text
                assert time.monotonic() - back < 10, "sse-token still refused 10 s after Redis"
                time.sleep(0.1)
            reopened = open_stream(api, jwt)
            reopened.close()
            assert httpx.get(f"{api.url}/api/v1/events/health").status_code == 200
        finally:
            live.close()
