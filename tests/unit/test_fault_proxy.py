"""The chaos proxy's bandwidth budget (tests/chaos/fault_proxy.py)."""

from __future__ import annotations

import pytest

from tests.chaos.fault_proxy import Throttle

pytestmark = pytest.mark.unit


def test_unlimited_never_waits() -> None:
    assert Throttle(rate=0).delay(10**9, now=0.0) == 0.0


def test_the_burst_goes_out_at_once_then_the_rate_paces() -> None:
    throttle = Throttle(rate=1000, burst=500)
    assert throttle.delay(500, now=0.0) == 0.0
    assert throttle.delay(1000, now=0.0) == pytest.approx(1.0)


def test_idle_time_refills_up_to_the_burst_only() -> None:
    throttle = Throttle(rate=1000, burst=500)
    throttle.delay(500, now=0.0)
    assert throttle.delay(250, now=0.25) == 0.0
    assert throttle.delay(500, now=100.0) == 0.0, "refilled, but not beyond the burst"
    assert throttle.delay(100, now=100.0) == pytest.approx(0.1)


def test_a_debt_is_paid_before_the_next_send() -> None:
    throttle = Throttle(rate=100, burst=0)
    assert throttle.delay(100, now=0.0) == pytest.approx(1.0)
    assert throttle.delay(100, now=1.0) == pytest.approx(1.0), "the first send's second is spent"
