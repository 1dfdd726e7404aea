"""Issue 19 (4): the shared outage detector (workers/lua/outage.lua) on a real Redis. Many
processes' failures, raced from threads here: one notice per affected user per outage, one
recovery notice each, nothing for anyone else, and a failure alone (below the threshold) or
out of the window opens nothing. Recovery needs a settled dependency: a success after the
last failure and no failure for the recovery period, so partial failures do not flap."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from progress.keys import KeyLayout
from progress.redis_store import connect
from workers.outages import LLM, OutageDetector

pytestmark = pytest.mark.integration

RECOVERY_SECONDS = 30


class Clock:
    """The detector's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def detector(redis_url: str, clock: Clock) -> OutageDetector:
    # A prefix of its own: the test's keys are the test's alone.
    layout = KeyLayout(f"t{uuid.uuid4().hex[:8]}")
    return OutageDetector(connect(redis_url), layout, 5, 60, RECOVERY_SECONDS, clock)


def test_racing_failures_tell_each_affected_user_once_and_recover_once(
    detector: OutageDetector, clock: Clock
) -> None:
    users = ["ann", "bob", "cy"]
    failures = [(f"task-{n}", users[n % 3]) for n in range(60)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda f: detector.failed(LLM, *f), failures))

    assert sum(opened for opened, _ in results) == 1
    told = [user for _, notify in results for user in notify]
    assert sorted(told) == users
    assert detector.failed(LLM, "task-again", "ann") == (False, [])
    clock.advance(RECOVERY_SECONDS)
    with ThreadPoolExecutor(8) as pool:
        recovered = list(pool.map(lambda _: detector.recovered(LLM), range(20)))
    assert sorted(user for batch in recovered for user in batch) == users
    assert detector.recovered(LLM) == []


def test_below_the_threshold_or_the_same_task_again_opens_nothing(
    detector: OutageDetector,
) -> None:
    for _ in range(10):  # one task retrying is one failing task
        assert detector.failed(LLM, "task-1", "ann") == (False, [])
    for n in range(2, 5):
        assert detector.failed(LLM, f"task-{n}", "bob") == (False, [])
    assert detector.recovered(LLM) == []
    opened, told = detector.failed(LLM, "task-5", None)  # a task acting for no one counts
    assert opened and sorted(told) == ["ann", "bob"]


def test_failures_older_than_the_window_do_not_count(redis_url: str) -> None:
    layout = KeyLayout(f"t{uuid.uuid4().hex[:8]}")
    detector = OutageDetector(connect(redis_url), layout, 2, 0.05, RECOVERY_SECONDS)
    assert detector.failed(LLM, "task-1", "ann") == (False, [])
    client = connect(redis_url)
    key = detector.layout.dependency_failures(LLM)
    client.zadd(key, {"task-1": 0})  # as if it failed long ago
    assert detector.failed(LLM, "task-2", "bob") == (False, [])


def open_outage(detector: OutageDetector, users: list[str]) -> None:
    for n in range(detector.threshold):
        detector.failed(LLM, f"task-{n}", users[n % len(users)])


def test_a_dependency_failing_half_the_time_keeps_one_outage_until_it_settles(
    detector: OutageDetector, clock: Clock
) -> None:
    open_outage(detector, ["ann", "bob"])
    for n in range(20):  # success, failure, success, ... each a second apart
        clock.advance(1)
        assert detector.recovered(LLM) == []
        clock.advance(1)
        assert detector.failed(LLM, f"retry-{n}", "ann" if n % 2 else "bob") == (False, [])

    clock.advance(RECOVERY_SECONDS - 1)
    assert detector.recovered(LLM) == []  # the last failure is too recent
    assert detector.failed(LLM, "late", "cy") == (False, ["cy"])  # still the same outage
    clock.advance(RECOVERY_SECONDS)
    assert sorted(detector.recovered(LLM)) == ["ann", "bob", "cy"]
    assert detector.recovered(LLM) == []


def test_a_success_within_the_recovery_period_ends_the_outage_at_a_later_check(
    detector: OutageDetector, clock: Clock
) -> None:
    open_outage(detector, ["ann"])
    clock.advance(RECOVERY_SECONDS * 2)
    assert detector.settled(LLM) == []  # no success since the last failure: still down
    detector.failed(LLM, "again", "ann")
    clock.advance(1)
    assert detector.recovered(LLM) == []  # it works, but the last failure is a second old
    clock.advance(RECOVERY_SECONDS - 2)
    assert detector.settled(LLM) == []
    clock.advance(1)
    assert detector.settled(LLM) == ["ann"]  # the success, then no failure for the period
    assert detector.settled(LLM) == []
