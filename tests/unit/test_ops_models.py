"""Preferences, notification targets and client addresses: pure rules."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from starlette.requests import Request

from api.auth.client_ip import client_ip, parse_networks
from api.event_meta import EventMeta
from api.notifications import NotificationRequest, Target, build_events
from api.preferences import NotificationPreferences

pytestmark = pytest.mark.unit


def meta(kind: str, level: str | None = None) -> EventMeta:
    return EventMeta(kind, "u1", None, "user", None, None, level=level)


def test_min_level_warning_mutes_info_but_never_critical() -> None:
    prefs = NotificationPreferences(min_level="warning")
    assert not prefs.allows(meta("system.notification", "info"))
    assert prefs.allows(meta("system.notification", "warning"))
    assert prefs.allows(meta("system.notification", "critical"))
    assert not prefs.allows(meta("system.error", "medium"))  # severities map onto levels
    assert prefs.allows(meta("system.error", "high"))
    assert prefs.allows(meta("task.progress-updated"))


def test_muted_types_are_dropped_except_critical_ones() -> None:
    prefs = NotificationPreferences(muted_types=["task.progress-heartbeat", "system.notification"])
    assert not prefs.allows(meta("task.progress-heartbeat"))
    assert not prefs.allows(meta("system.notification", "warning"))
    assert prefs.allows(meta("system.notification", "critical"))


def test_unknown_muted_types_are_refused() -> None:
    with pytest.raises(ValidationError, match="unknown event types: task.nope"):
        NotificationPreferences(muted_types=["task.nope"])


def test_targets_build_one_event_per_recipient_stream() -> None:
    everyone = build_events(NotificationRequest(level="critical", message="m"))
    assert [(e.audience, e.user_id) for e in everyone] == [("broadcast", None)]
    users = build_events(
        NotificationRequest(
            level="info", message="m", target=Target(audience="users", user_ids=["a", "b", "a"])
        )
    )
    assert [(e.audience, e.user_id) for e in users] == [("user", "a"), ("user", "b")]
    session = build_events(
        NotificationRequest(
            level="info",
            message="m",
            target=Target(audience="session", user_ids=["a"], session_id="s1"),
        )
    )
    assert [(e.audience, e.user_id, e.session_id) for e in session] == [("session", "a", "s1")]


def test_inconsistent_targets_are_refused() -> None:
    with pytest.raises(ValidationError, match="needs user_ids"):
        Target(audience="users")
    with pytest.raises(ValidationError, match="exactly one user id"):
        Target(audience="session", user_ids=["a", "b"], session_id="s")


def request_from(peer: str, forwarded: str | None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return Request({"type": "http", "client": (peer, 1234), "headers": headers})


def test_forwarded_for_counts_only_from_trusted_proxies() -> None:
    proxies = parse_networks(["10.0.0.0/8"])
    assert client_ip(request_from("10.1.2.3", "198.51.100.7"), proxies) == "198.51.100.7"
    assert client_ip(request_from("203.0.113.9", "198.51.100.7"), proxies) == "203.0.113.9"
    # the client wrote its own header first; the proxy appended the real peer
    forged = request_from("10.1.2.3", "1.1.1.1, 198.51.100.7")
    assert client_ip(forged, proxies) == "198.51.100.7"
    assert client_ip(request_from("10.1.2.3", "not-an-ip"), proxies) == "10.1.2.3"
    assert client_ip(request_from("10.1.2.3", "198.51.100.7"), ()) == "10.1.2.3"
