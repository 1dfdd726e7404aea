"""Issue 19 item 6: alerts reach someone. Debian's real Prometheus scrapes a real API every
second with the shipped rules (only ``for:`` durations cut) and sends to Debian's real
Alertmanager with the shipped configuration (only its webhook URL and group timings set),
which posts to a local webhook: an API that stops and an API over its connection threshold
each reach the webhook with the instance, the value and a runbook link that exists."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from progress.redis_server import RedisServer
from tests.alertmanager_server import Alert, AlertmanagerServer, WebhookReceiver
from tests.prometheus_server import PrometheusServer
from tests.servers import ApiServer
from tests.sse_client import SseClient

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
OPERATIONS = ROOT / "docs" / "operations.md"
#: From an alert's firing to the webhook: 1 s scrapes and evaluations, 1 s group_wait.
DELIVERY_SECONDS = 45


def anchors(markdown: str) -> set[str]:
    """The heading anchors GitHub makes: lower case, punctuation dropped, spaces to dashes."""
    headings = re.findall(r"^#+ (.+)$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def shipped_rules(fast: set[str]) -> dict[str, Any]:
    """alerts.yml with the ``for:`` of the alerts in ``fast`` cut to 1 s; nothing else."""
    rules: dict[str, Any] = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule["alert"] in fast:
                rule["for"] = "1s"
    return rules


def assert_on_call_can_act(alert: Alert, instance: str) -> None:
    """Labels and annotations a person paged at night needs, the runbook among them."""
    assert alert["status"] == "firing"
    assert alert["labels"]["instance"] == instance
    assert alert["labels"]["severity"] in {"warning", "critical"}
    assert instance in alert["annotations"]["summary"]
    float(alert["annotations"]["value"])
    page, anchor = alert["annotations"]["runbook_url"].split("#")
    assert page == "docs/operations.md"
    assert anchor in anchors(OPERATIONS.read_text())


def test_every_alert_links_a_runbook_that_exists() -> None:
    existing = anchors(OPERATIONS.read_text())
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            annotations = rule["annotations"]
            assert {"summary", "value", "runbook_url"} <= set(annotations), rule["alert"]
            page, anchor = annotations["runbook_url"].split("#")
            assert page == "docs/operations.md" and anchor in existing, rule["alert"]


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def alertmanager(webhook: WebhookReceiver) -> Iterator[AlertmanagerServer]:
    with AlertmanagerServer(webhook.url) as server:
        yield server


@pytest.mark.timeout(90)
def test_a_stopped_api_instance_pages_through_alertmanager(
    redis_server: RedisServer, webhook: WebhookReceiver, alertmanager: AlertmanagerServer
) -> None:
    token = secrets.token_urlsafe(24)
    api = ApiServer(f"{redis_server.url}/0", METRICS_TOKEN=token).start()
    instance = f"127.0.0.1:{api.port}"
    try:
        with PrometheusServer(
            [instance], shipped_rules({"RealtimeTargetDown"}), token, alertmanager.address
        ) as prometheus:
            up = 'up{job="sse-api"} == 1'
            _wait(lambda: prometheus.query(up), "the API scraped as up")
            assert not webhook.alerts
            api.stop()
            alert = webhook.wait_for(
                lambda a: a["labels"]["alertname"] == "RealtimeTargetDown", DELIVERY_SECONDS
            )
    finally:
        api.close()
    assert_on_call_can_act(alert, instance)
    assert alert["labels"]["job"] == "sse-api"
    assert float(alert["annotations"]["value"]) == 0
    assert alert["annotations"]["runbook_url"] == "docs/operations.md#realtimetargetdown"


@pytest.mark.timeout(90)
def test_too_many_streams_page_through_alertmanager(
    redis_server: RedisServer,
    webhook: WebhookReceiver,
    alertmanager: AlertmanagerServer,
    user_id: str,
) -> None:
    token = secrets.token_urlsafe(24)
    clients: list[SseClient] = []
    with (
        ApiServer(
            f"{redis_server.url}/0", SSE_MAX_CONNECTIONS_PER_INSTANCE="5", METRICS_TOKEN=token
        ) as api,
        PrometheusServer(
            [f"127.0.0.1:{api.port}"],
            shipped_rules({"SseConnectionsHigh"}),
            token,
            alertmanager.address,
        ) as prometheus,
    ):
        try:
            _wait(lambda: prometheus.query('up{job="sse-api"} == 1'), "the API scraped as up")
            for n in range(5):  # 5 of 5: over the shipped 80% threshold
                jwt = api.jwt(f"{user_id}-{n}")
                client = SseClient(f"{api.url}/api/v1/events/stream?sse_token={api.sse_token(jwt)}")
                clients.append(client)
                assert client.wait_open() == 200
            alert = webhook.wait_for(
                lambda a: a["labels"]["alertname"] == "SseConnectionsHigh", DELIVERY_SECONDS
            )
        finally:
            for client in clients:
                client.close()
    assert_on_call_can_act(alert, f"127.0.0.1:{api.port}")
    assert alert["labels"]["instance_id"].startswith("api-")
    assert float(alert["annotations"]["value"]) == 1.0
    assert "100%" in alert["annotations"]["summary"]


def _wait(check: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
