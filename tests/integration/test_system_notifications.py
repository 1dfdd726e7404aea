"""Issue 7: operators send system notifications and errors (endpoint and CLI); users' stored
preferences are applied at relay on every instance; the operations report for admins."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
import redis

from progress.keys import KeyLayout, user_stream
from progress.redis_server import RedisServer
from tests.integration.test_sse_stream import open_stream
from tests.servers import ApiServer
from tests.sse_client import SseClient
from workers.migrate import upgrade

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('audit') / 'audit.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="module")
def servers(redis_server: RedisServer, database: str) -> Iterator[tuple[ApiServer, ApiServer]]:
    url = f"{redis_server.url}/0"
    first = ApiServer(url, SSE_HEARTBEAT_SECONDS="1", DATABASE_URL=database)
    second = ApiServer(url, SSE_HEARTBEAT_SECONDS="1", DATABASE_URL=database)
    with first, second:
        yield first, second


def audited(api: ApiServer, event_id: str) -> dict:
    rows = httpx.get(f"{api.url}/api/v1/admin/audit", headers=admin(api), timeout=5).json()
    return next(row for row in rows["events"] if row["event_id"] == event_id)


def admin(api: ApiServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.jwt('ops-admin', roles=('admin',))}"}


def notify(api: ApiServer, body: dict, kind: str = "notifications") -> httpx.Response:
    return httpx.post(f"{api.url}/api/v1/admin/{kind}", json=body, headers=admin(api), timeout=5)


def notices(client: SseClient) -> list[tuple[str, str]]:
    return [
        (e.event, e.json.get("level") or e.json.get("severity"))
        for e in client.events
        if e.event.startswith("system.")
    ]


def test_a_user_who_muted_info_gets_warnings_and_criticals_but_never_info(
    servers: tuple[ApiServer, ApiServer], user_id: str
) -> None:
    api, other = servers
    quiet, chatty = f"{user_id}-quiet", f"{user_id}-chatty"
    auth = {"Authorization": f"Bearer {api.jwt(quiet)}"}
    url = f"{api.url}/api/v1/me/notification-preferences"
    assert httpx.get(url, headers=auth).json() == {"min_level": "info", "muted_types": []}
    # streams open BEFORE the change, on the other instance: the change reaches them live
    quiet_stream = open_stream(other, other.jwt(quiet))
    chatty_stream = open_stream(api, api.jwt(chatty))
    try:
        put = httpx.put(url, headers=auth, json={"min_level": "warning"})
        assert put.status_code == 200
        assert httpx.get(url, headers=auth).json()["min_level"] == "warning"
        for level in ("info", "warning", "critical", "info"):
            assert notify(api, {"level": level, "message": f"{level} note"}).status_code == 202
        sent = notify(
            api,
            {"severity": "low", "message": "slow", "affected_scope": "generation"},
            kind="errors",
        )
        assert sent.status_code == 202
        last = notify(api, {"level": "critical", "message": "end"})
        assert last.status_code == 202
        # journaled in the SQL audit before the push (issue 6), and marked published
        assert audited(api, last.json()["event_ids"][0])["status"] == "published"
        chatty_stream.wait_for(lambda _: len(notices(chatty_stream)) == 6)
        metrics = httpx.get(f"{api.url}/metrics").text
        assert (
            'sse_system_notifications_sent_total{level="info",type="system.notification"} 2.0'
            in (metrics)
        )
        assert 'sse_system_notifications_sent_total{level="low",type="system.error"} 1.0' in metrics
        quiet_stream.wait_for(lambda _: len(notices(quiet_stream)) == 3)
        assert notices(quiet_stream) == [
            ("system.notification", "warning"),
            ("system.notification", "critical"),
            ("system.notification", "critical"),
        ]
        assert ("system.notification", "info") in notices(chatty_stream)
        # a resumed stream applies them to the replay as well
        cursor = quiet_stream.events[1].id  # just after the first event it got
        quiet_stream.close()
        resumed = open_stream(api, api.jwt(quiet), cursor)
        resumed.wait_for(lambda events: any(e.event == "heartbeat" for e in events), timeout=5)
        assert all(level != "info" for _, level in notices(resumed))
        resumed.close()
    finally:
        quiet_stream.close()
        chatty_stream.close()


def test_notifications_reach_only_their_targets(
    servers: tuple[ApiServer, ApiServer], user_id: str
) -> None:
    api, _ = servers
    a, b = f"{user_id}-a", f"{user_id}-b"
    a_laptop = open_stream(api, api.jwt(a, session_id="laptop"))
    a_phone = open_stream(api, api.jwt(a, session_id="phone"))
    b_stream = open_stream(api, api.jwt(b))
    try:
        to_session = {"audience": "session", "user_ids": [a], "session_id": "laptop"}
        assert notify(api, {"level": "warning", "message": "laptop only", "target": to_session})
        sent = notify(
            api,
            {
                "severity": "critical",
                "message": "your novel failed",
                "affected_scope": "novel n1",
                "target": {"audience": "users", "user_ids": [b]},
            },
            kind="errors",
        ).json()
        assert sent["type"] == "system.error" and sent["events"] == 1
        b_stream.wait_for(lambda events: any(e.event == "system.error" for e in events))
        a_laptop.wait_for(lambda events: any(e.event == "system.notification" for e in events))
        a_phone.wait_for(lambda events: any(e.event == "heartbeat" for e in events), timeout=5)
        assert not a_phone.of_type("system.") and not a_laptop.of_type("system.error")
        assert [e.json["affected_scope"] for e in b_stream.of_type("system.error")] == ["novel n1"]
    finally:
        for client in (a_laptop, a_phone, b_stream):
            client.close()


def test_only_admins_send_and_bad_bodies_are_refused(
    servers: tuple[ApiServer, ApiServer], user_id: str
) -> None:
    api, _ = servers
    user_auth = {"Authorization": f"Bearer {api.jwt(user_id)}"}
    refused = httpx.post(
        f"{api.url}/api/v1/admin/notifications",
        json={"level": "info", "message": "hi"},
        headers=user_auth,
    )
    assert refused.status_code == 403
    invalid = notify(api, {"level": "loud", "message": "hi"})
    assert invalid.status_code == 422 and "level" in invalid.json()["error"]["fields"]
    no_users = notify(api, {"level": "info", "message": "hi", "target": {"audience": "users"}})
    assert no_users.status_code == 422
    prefs = httpx.put(
        f"{api.url}/api/v1/me/notification-preferences",
        json={"muted_types": ["task.nope"]},
        headers=user_auth,
    )
    assert prefs.status_code == 422


def test_the_cli_sends_a_notification(
    servers: tuple[ApiServer, ApiServer], redis_server: RedisServer, database: str, user_id: str
) -> None:
    api, _ = servers
    stream = open_stream(api, api.jwt(user_id))
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "api.notify_cli",
                "critical",
                "Writing is paused",
                "--user",
                user_id,
            ],
            env={**os.environ, "REDIS_URL": f"{redis_server.url}/0", "DATABASE_URL": database},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("system.notification ")
        events = stream.wait_for(lambda _: bool(stream.of_type("system.notification")))
        notice = next(e for e in events if e.event == "system.notification").json
        assert (notice["level"], notice["message"]) == ("critical", "Writing is paused")
        # journaled in the SQL audit before the push (issue 6), and marked published
        assert audited(api, notice["event_id"])["status"] == "published"
    finally:
        stream.close()
    bad = subprocess.run(
        [sys.executable, "-m", "api.notify_cli", "loud", "x"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert bad.returncode == 2 and "level" in bad.stderr


def test_the_operations_report_is_for_admins(
    servers: tuple[ApiServer, ApiServer], user_id: str
) -> None:
    api, _ = servers
    stream = open_stream(api, api.jwt(user_id))
    try:
        public = httpx.get(f"{api.url}/api/v1/events/health").json()
        assert "report" not in public and public["status"] == "ok"
        not_admin = httpx.get(
            f"{api.url}/api/v1/events/health",
            headers={"Authorization": f"Bearer {api.jwt(user_id)}"},
        )
        assert not_admin.status_code == 403
        notify(api, {"level": "info", "message": "for the report"})
        stream.wait_for(lambda _: bool(stream.of_type("system.notification")))
        report = httpx.get(f"{api.url}/api/v1/events/health", headers=admin(api)).json()["report"]
        assert report["connections"]["open"] >= 1
        assert report["delivery_latency_ms"]["samples"] >= 1
        assert report["delivery_latency_ms"]["p99"] is not None
        assert "system.notification" in [t["type"] for t in report["top_event_types"]]
        assert user_id in [c["user_id"] for c in report["slowest_clients"]]
        assert report["redis_streams"]["streams_measured"] >= 1
        assert report["redis_streams"]["stream_bytes"] > 0
        assert report["backpressure"]["saturated"] is False
    finally:
        stream.close()


def test_the_apis_own_writes_keep_streams_to_the_configured_length(
    redis_server: RedisServer, database: str, user_id: str
) -> None:
    """PROGRESS_MAX_STREAM_LENGTH caps what the API appends (notifications, resends) as it caps
    the workers' appends: both read the one store settings model."""
    sent, cap = 150, 10
    unlimited = {"SSE_RATE_WRITE_USER_PER_SECOND": "100000", "SSE_RATE_WRITE_USER_BURST": "100000"}
    url = f"{redis_server.url}/0"
    with ApiServer(
        url, DATABASE_URL=database, PROGRESS_MAX_STREAM_LENGTH=str(cap), **unlimited
    ) as api:
        for n in range(sent):
            body = {
                "level": "info",
                "message": f"note {n}",
                "target": {"audience": "users", "user_ids": [user_id]},
            }
            assert notify(api, body).status_code == 202
    client = redis.Redis.from_url(url)
    try:
        length = client.xlen(KeyLayout().events(user_stream(user_id)))
    finally:
        client.close()
    # MAXLEN ~ trims whole radix-tree nodes (at most 100 entries each): a little over the cap
    assert 0 < length <= cap + 100 < sent
