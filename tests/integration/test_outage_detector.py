"""Issue 19 (4): the shared outage detector (workers/lua/outage.lua) on a real Redis. Many
processes' failures, raced from threads here: one notice per affected user per outage, one
recovery notice each, nothing for anyone else, and a failure alone (below the threshold) or
out of the window opens nothing."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from progress.keys import KeyLayout
from progress.redis_store import connect
from workers.outages import LLM, OutageDetector

pytestmark = pytest.mark.integration


@pytest.fixture
def detector(redis_url: str) -> OutageDetector:
    # A prefix of its own: the test's keys are the test's alone.
    return OutageDetector(connect(redis_url), KeyLayout(f"t{uuid.uuid4().hex[:8]}"), 5, 60)


def test_racing_failures_tell_each_affected_user_once_and_recover_once(
    detector: OutageDetector,
) -> None:
    users = ["ann", "bob", "cy"]
    failures = [(f"task-{n}", users[n % 3]) for n in range(60)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda f: detector.failed(LLM, *f), failures))

    assert sum(opened for opened, _ in results) == 1
    told = [user for _, notify in results for user in notify]
    assert sorted(told) == users
    assert detector.failed(LLM, "task-again", "ann") == (False, [])
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
    detector = OutageDetector(connect(redis_url), KeyLayout(f"t{uuid.uuid4().hex[:8]}"), 2, 0.05)
    assert detector.failed(LLM, "task-1", "ann") == (False, [])
    client = connect(redis_url)
    key = detector.layout.dependency_failures(LLM)
    client.zadd(key, {"task-1": 0})  # as if it failed long ago
    assert detector.failed(LLM, "task-2", "bob") == (False, [])
