"""Issue 15 (security 7): error bodies name no internals, inputs a database cannot store get a
422, and the operations endpoints are not open to anyone on the public port."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from progress.redis_server import RedisServer
from tests.servers import ApiServer

pytestmark = pytest.mark.integration

METRICS_TOKEN = "metrics-token-for-this-test-0123456789"
GENERIC = "the event store is unavailable; retry later"


@pytest.fixture(scope="module")
def api(redis_server: RedisServer) -> Iterator[ApiServer]:
    with ApiServer(f"{redis_server.url}/0") as server:
        yield server


@pytest.fixture(scope="module")
def operated(redis_server: RedisServer) -> Iterator[ApiServer]:
    """An API with the docs on and a metrics token."""
    env = {"SSE_DOCS_ENABLED": "true", "METRICS_TOKEN": METRICS_TOKEN}
    with ApiServer(f"{redis_server.url}/0", **env) as server:
        yield server


def bearer(api: ApiServer, user_id: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.jwt(user_id, roles=roles)}"}


def test_a_redis_outage_is_answered_without_addresses(user_id: str) -> None:
    with RedisServer() as redis, ApiServer(f"{redis.url}/0") as api:
        auth = bearer(api, user_id)
        redis.stop()
        deadline = time.monotonic() + 20
        while (health := httpx.get(f"{api.url}/api/v1/events/health", timeout=15)).is_success:
            assert time.monotonic() < deadline, "health never reported the outage"
            time.sleep(0.1)
        task = httpx.get(f"{api.url}/api/v1/tasks/t-1", headers=auth, timeout=15)
        assert (health.status_code, task.status_code) == (503, 503)
        assert health.json()["redis"] == {"reachable": False, "error": GENERIC}
        assert task.json()["error"] == {"code": "store_unavailable", "message": GENERIC}
        for body in (health.text, task.text):
            assert str(redis.port) not in body and "127.0.0.1" not in body
        assert str(redis.port) in api.log_text  # the cause is for operators, in the log


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_control_characters_and_huge_ids_get_422_not_500(
    redis_server: RedisServer, database_url: str, user_id: str
) -> None:
    env = {"DATABASE_URL": database_url, "WORKER_BROKER_DB": "14", "WORKER_RESULT_DB": "15"}
    with ApiServer(f"{redis_server.url}/0", **env) as api:
        writer, admin = bearer(api, user_id), bearer(api, f"{user_id}-ops", "admin")
        novels = f"{api.url}/api/v1/novels"
        good = {"title": "Tide", "premise": "line one\n\tline two", "chapter_count": 1}
        for field, value in (("title", "Ti\x00de"), ("premise", "a\x00b"), ("title", "a\nb")):
            refused = httpx.post(novels, json=good | {field: value}, headers=writer, timeout=10)
            assert refused.status_code == 422, refused.text
            assert list(refused.json()["error"]["fields"]) == [field]
        assert httpx.post(novels, json=good, headers=writer, timeout=10).status_code == 202
        assert httpx.get(f"{novels}/a%00b", headers=writer, timeout=10).status_code == 422
        notice = {"level": "info", "message": "x\x00", "target": {"audience": "everyone"}}
        sent = httpx.post(
            f"{api.url}/api/v1/admin/notifications", json=notice, headers=admin, timeout=10
        )
        assert sent.status_code == 422
        resend = f"{api.url}/api/v1/admin/audit/{10**23}/resend"
        assert httpx.post(resend, headers=admin, timeout=10).status_code == 422
        largest = resend.replace(str(10**23), str(2**63 - 1))
        assert httpx.post(largest, headers=admin, timeout=10).status_code == 404


def test_docs_are_off_unless_enabled(api: ApiServer, operated: ApiServer) -> None:
    for path in ("/docs", "/redoc", "/openapi.json"):
        text = httpx.get(f"{api.url}{path}", timeout=5).text.lower()
        assert "swagger" not in text and "redoc" not in text and '"openapi"' not in text, path
    assert httpx.get(f"{operated.url}/openapi.json", timeout=5).json()["openapi"]
    assert "swagger" in httpx.get(f"{operated.url}/docs", timeout=5).text.lower()


def test_metrics_need_the_token_when_one_is_set(operated: ApiServer) -> None:
    url = f"{operated.url}/metrics"
    assert httpx.get(url, timeout=5).status_code == 401
    wrong = {"Authorization": "Bearer not-the-metrics-token-0123"}
    assert httpx.get(url, headers=wrong, timeout=5).status_code == 401
    right = httpx.get(url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=5)
    assert right.status_code == 200 and "sse_connections_open" in right.text


def test_without_a_token_metrics_answer_direct_loopback_clients_only(api: ApiServer) -> None:
    url = f"{api.url}/metrics"
    assert httpx.get(url, timeout=5).status_code == 200
    relayed = httpx.get(url, headers={"X-Forwarded-For": "203.0.113.9"}, timeout=5)
    assert relayed.status_code == 403
    assert relayed.json()["error"]["code"] == "forbidden"
