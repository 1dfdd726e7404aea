"""Which users poll under an operators' rule (issue 7: runtime switch, A/B by percentage)."""

from __future__ import annotations

import pytest

from api.realtime_mode import ModeRule, bucket_of, mode_for, polls_anyone

pytestmark = pytest.mark.unit

USERS = [f"user-{n}" for n in range(2000)]


def test_sse_rule_streams_everyone_and_disabled_sse_polls_everyone() -> None:
    assert {mode_for(u, ModeRule(mode="sse")) for u in USERS} == {"sse"}
    assert {mode_for(u, ModeRule(mode="sse"), sse_enabled=False) for u in USERS} == {"polling"}


def test_percentage_moves_about_that_share_and_always_the_same_users() -> None:
    rule = ModeRule(mode="polling", percent=20)
    polling = {u for u in USERS if mode_for(u, rule) == "polling"}
    assert 300 <= len(polling) <= 500
    assert polling == {u for u in USERS if mode_for(u, rule) == "polling"}


def test_raising_the_percentage_keeps_the_users_already_polling() -> None:
    small = {u for u in USERS if mode_for(u, ModeRule(mode="polling", percent=10)) == "polling"}
    large = {u for u in USERS if mode_for(u, ModeRule(mode="polling", percent=50)) == "polling"}
    assert small < large
    assert all(0 <= bucket_of(u) < 100 for u in USERS)


@pytest.mark.parametrize(
    ("rule", "enabled"),
    [
        (ModeRule(mode="sse"), True),
        (ModeRule(mode="sse"), False),
        (ModeRule(mode="polling", percent=0), True),
        (ModeRule(mode="polling", percent=1), True),
        (ModeRule(mode="polling", percent=100), True),
    ],
)
def test_polls_anyone_says_whether_some_user_polls(rule: ModeRule, enabled: bool) -> None:
    # a stream open takes the stepwise path exactly while this holds (api/stream/admission.py)
    anyone = any(mode_for(u, rule, enabled) == "polling" for u in USERS)
    assert polls_anyone(rule, enabled) == anyone
