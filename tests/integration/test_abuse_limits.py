"""Issue 7: abuse limits shared through Redis. A client hammering the token endpoint from one
address is limited, then banned, while another user from another address is served normally
at the same time; limits hold across instances; refusals are JSON with Retry-After."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from progress.redis_server import RedisServer
from tests.servers import ApiServer
from tests.sse_client import SseClient

pytestmark = pytest.mark.integration

LIMITS = {
    # the swarm defaults of ApiServer lift the per-IP limits; these tests want real ones
    "SSE_RATE_TOKEN_IP_PER_SECOND": "5",
    "SSE_RATE_TOKEN_IP_BURST": "20",
    "SSE_RATE_STREAM_IP_PER_SECOND": "5",
    "SSE_RATE_STREAM_IP_BURST": "20",
    "SSE_RATE_TOKEN_USER_PER_SECOND": "1",
    "SSE_RATE_TOKEN_USER_BURST": "5",
    "SSE_BAN_AFTER_STRIKES": "10",
    "SSE_BAN_SECONDS": "60",
}


@pytest.fixture(scope="module")
def servers(redis_server: RedisServer) -> Iterator[tuple[ApiServer, ApiServer]]:
    url = f"{redis_server.url}/0"
    first, second = ApiServer(url, **LIMITS), ApiServer(url, **LIMITS)
    with first, second:
        yield first, second


def client_from(address: str) -> httpx.Client:
    """An HTTP client whose connections come from ``address`` (any 127.x.y.z is loopback)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=5)


def token_request(client: httpx.Client, api: ApiServer, jwt: str) -> httpx.Response:
    return client.post(
        f"{api.url}/api/v1/auth/sse-token", headers={"Authorization": f"Bearer {jwt}"}
    )


def test_a_hammering_address_is_limited_then_banned_while_another_is_served(
    servers: tuple[ApiServer, ApiServer], user_id: str
) -> None:
    api, other_instance = servers
    hammer_jwt = api.jwt(f"{user_id}-hammer")
    calm_jwt = api.jwt(f"{user_id}-calm")
    calm_statuses: list[int] = []
    stop = threading.Event()

    def calm_user() -> None:
        with client_from("127.0.0.3") as client:
            while not stop.is_set():
                calm_statuses.append(token_request(client, api, calm_jwt).status_code)
                stop.wait(1.2)  # within its own 1/s budget

    calm = threading.Thread(target=calm_user)
    calm.start()
    try:
        responses: list[httpx.Response] = []
        with client_from("127.0.0.2") as hammer:
            for n in range(40):
                # both instances share the buckets and the ban
                responses.append(token_request(hammer, (api, other_instance)[n % 2], hammer_jwt))
    finally:
        stop.set()
        calm.join()

    statuses = [r.status_code for r in responses]
    assert statuses[:5] == [200] * 5, statuses  # the user's burst
    first_429 = statuses.index(429)
    first_403 = statuses.index(403)
    assert first_429 < first_403, statuses
    assert set(statuses[first_403:]) == {403}, statuses  # banned stays banned
    limited = responses[first_429]
    assert limited.json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
    banned = responses[first_403]
    assert banned.json()["error"]["code"] == "ip_banned"
    assert 50 <= int(banned.headers["retry-after"]) <= 60
    # the other user, from another address, was served all along
    assert calm_statuses and set(calm_statuses) == {200}, Counter(calm_statuses)
    # a banned address cannot open a stream either; the other address can
    ok_token = api.sse_token(calm_jwt)
    with client_from("127.0.0.2") as banned_client:
        stream = banned_client.get(f"{api.url}/api/v1/events/stream?sse_token={ok_token}")
    assert stream.status_code == 403
    assert stream.json()["error"]["code"] == "ip_banned"
    refused = httpx.get(f"{api.url}/metrics").text + httpx.get(f"{other_instance.url}/metrics").text
    for reason in ("rate_limited", "ip_banned"):
        assert f'sse_token_requests_refused_total{{reason="{reason}"}}' in refused
    assert (
        'sse_connections_refused_total{instance_id="' in refused and 'reason="ip_banned"' in refused
    )
    log = api.log_text + other_instance.log_text
    assert '"reason":"rate_limited"' in log and '"reason":"ip_banned"' in log
    assert '"client_ip":"127.0.0.2"' in log


def test_repeated_bad_tokens_get_an_address_banned(
    servers: tuple[ApiServer, ApiServer], user_id: str
) -> None:
    api, _ = servers
    with client_from("127.0.0.4") as client:
        statuses = [
            client.get(f"{api.url}/api/v1/events/stream?sse_token=forged-{n}").status_code
            for n in range(12)
        ]
        assert statuses[:9] == [401] * 9, statuses
        assert statuses[-1] == 403, statuses
        # a valid token from the banned address is refused too
        good = client.post(
            f"{api.url}/api/v1/auth/sse-token",
            headers={"Authorization": f"Bearer {api.jwt(user_id)}"},
        )
        assert good.status_code == 403


def test_an_instance_refuses_streams_beyond_its_maximum(redis_server: RedisServer) -> None:
    with ApiServer(f"{redis_server.url}/0", SSE_MAX_CONNECTIONS_PER_INSTANCE="2") as api:
        clients = [
            SseClient(f"{api.url}/api/v1/events/stream?sse_token={api.sse_token(api.jwt(u))}")
            for u in ("max-a", "max-b")
        ]
        try:
            assert [c.wait_open() for c in clients] == [200, 200]
            third = SseClient(
                f"{api.url}/api/v1/events/stream?sse_token={api.sse_token(api.jwt('max-c'))}"
            )
            assert third.wait_open() == 429
            assert b"instance_full" in third.body
            assert third.response_headers is not None
            assert 5 <= int(third.response_headers["retry-after"]) <= 20
        finally:
            for client in clients:
                client.close()
