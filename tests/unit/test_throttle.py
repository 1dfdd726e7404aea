"""Issue 2 (R3.5): one update per second per task, trailing edge, never backwards."""

from __future__ import annotations

import pytest

from progress.throttle import ProgressThrottle

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def throttle(clock: Clock) -> ProgressThrottle[str]:
    return ProgressThrottle(1.0, clock)


def test_first_update_goes_out_at_once(throttle: ProgressThrottle[str]) -> None:
    assert throttle.offer("t", 5, "a") == (5, "a")


def test_burst_inside_a_window_releases_only_the_last_at_the_window_end(
    throttle: ProgressThrottle[str], clock: Clock
) -> None:
    throttle.offer("t", 1, "first")
    for step in range(2, 50):
        clock.now += 0.01
        assert throttle.offer("t", step, f"u{step}") is None
    assert throttle.due() == []
    assert throttle.next_deadline() == 1001.0

    clock.now = 1001.0
    assert throttle.due() == [("t", 49, "u49")]
    assert throttle.due() == []
    assert throttle.next_deadline() is None


def test_update_after_the_window_goes_out_at_once_and_supersedes_the_held_one(
    throttle: ProgressThrottle[str], clock: Clock
) -> None:
    throttle.offer("t", 1, "a")
    throttle.offer("t", 2, "held")
    clock.now += 1.5
    assert throttle.offer("t", 3, "new") == (3, "new")
    assert throttle.due() == []


def test_percent_never_goes_backwards(throttle: ProgressThrottle[str], clock: Clock) -> None:
    throttle.offer("t", 60, "a")
    clock.now += 2
    assert throttle.offer("t", 40, "lower") == (60, "lower")


def test_flush_releases_the_held_update_before_a_terminal_event(
    throttle: ProgressThrottle[str],
) -> None:
    throttle.offer("t", 10, "a")
    throttle.offer("t", 90, "b")
    assert throttle.flush("t") == (90, "b")
    assert throttle.flush("t") is None
    assert throttle.due() == []


def test_tasks_are_throttled_independently(throttle: ProgressThrottle[str]) -> None:
    assert throttle.offer("t1", 1, "a") is not None
    assert throttle.offer("t2", 1, "b") is not None


def test_forget_starts_a_new_run_from_zero(throttle: ProgressThrottle[str]) -> None:
    throttle.offer("t", 80, "a")
    throttle.forget("t")
    assert throttle.offer("t", 5, "retry") == (5, "retry")
