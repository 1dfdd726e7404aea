"""Issue 15 (security 2): validly signed tokens with oddly typed claims get 401, never admin.

Tokens are signed here with the test server's secret, so only the claims are wrong.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from progress.redis_server import RedisServer
from tests.servers import JWT_SECRET, ApiServer

pytestmark = pytest.mark.integration

ODD_CLAIMS: dict[str, dict[str, Any]] = {
    "roles as an object": {"roles": {"admin": False}},
    "roles null": {"roles": None},
    "roles a number": {"roles": 5},
    "roles a string": {"roles": "admin"},
    "huge exp": {"exp": 10**400},
    "sid a list": {"sid": ["a", "b"]},
    "sid an object": {"sid": {"a": 1}},
    "sub a number": {"sub": 42},
    "sub a list": {"sub": ["admin"]},
    "jti a list": {"jti": ["x"]},  # refused by PyJWT
}


@pytest.fixture(scope="module")
def api(redis_server: RedisServer) -> Iterator[ApiServer]:
    # Every refusal here is an auth failure, a strike against 127.0.0.1: its own key prefix
    # keeps those strikes (and any ban) away from the other tests' servers on this Redis.
    env = {"SSE_BAN_AFTER_STRIKES": "100000", "PROGRESS_KEY_PREFIX": "claims"}
    with ApiServer(f"{redis_server.url}/0", **env) as server:
        yield server


def _token(user_id: str, odd: dict[str, Any], **base: Any) -> str:
    now = int(time.time())
    claims = {"sub": user_id, "iat": now, "exp": now + 600, **base, **odd}
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


def _assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"].startswith("token_"), response.text


@pytest.mark.parametrize("case", sorted(ODD_CLAIMS))
def test_odd_platform_claims_get_401_on_admin_and_token_endpoints(
    api: ApiServer, user_id: str, case: str
) -> None:
    bearer = {"Authorization": f"Bearer {_token(user_id, ODD_CLAIMS[case], roles=['admin'])}"}
    _assert_refused(httpx.get(f"{api.url}/api/v1/admin/audit", headers=bearer, timeout=5))
    _assert_refused(
        httpx.put(
            f"{api.url}/api/v1/realtime/config",
            json={"mode": "sse"},
            headers=bearer,
            timeout=5,
        )
    )
    _assert_refused(httpx.post(f"{api.url}/api/v1/auth/sse-token", headers=bearer, timeout=5))


def test_a_roles_object_naming_admin_is_not_the_admin_role(api: ApiServer, user_id: str) -> None:
    health = f"{api.url}/api/v1/events/health"
    admin = {"Authorization": f"Bearer {_token(user_id, {'roles': ['admin']})}"}
    assert "report" in httpx.get(health, headers=admin, timeout=5).json()
    forged = {"Authorization": f"Bearer {_token(user_id, {'roles': {'admin': False}})}"}
    _assert_refused(httpx.get(health, headers=forged, timeout=5))
    notice = {"level": "info", "title": "x", "message": "x", "target": {"audience": "all"}}
    response = httpx.post(
        f"{api.url}/api/v1/admin/notifications", json=notice, headers=forged, timeout=5
    )
    _assert_refused(response)
