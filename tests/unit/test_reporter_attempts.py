"""Issue 2 (R3.4): an immediate retry whose next attempt starts before the failed attempt's
``retrying`` is handled (threads pool) keeps the new attempt tracked and reporting."""

from __future__ import annotations

import orjson
import pytest

from progress.identity import Identity
from progress.reporter import Reporter, TaskRun
from progress.settings import ProgressSettings
from progress.store import MemoryEventStore

pytestmark = pytest.mark.unit


def test_late_retrying_of_attempt_one_leaves_attempt_two_running() -> None:
    store = MemoryEventStore()
    reporter = Reporter(ProgressSettings(throttle_seconds=0), lambda: store)
    who = Identity("u1")
    first = TaskRun("t1", "draft", who, attempt=1)
    second = TaskRun("t1", "draft", who, attempt=2)
    try:
        reporter.start(first)
        reporter.start(second)
        reporter.retrying(first, "Timeout", "slow model", 0)
        assert reporter.running() == [second]
        reporter.completed(second, "done")
        assert reporter.running() == []
        assert reporter.flush(5)
    finally:
        reporter.pump.close()
    types = [orjson.loads(e.data)["type"] for e in store.read_after("u:u1", "0-0", 100)]
    assert types == [
        "task.progress-started",
        "task.progress-started",
        "task.progress-retrying",
        "task.progress-completed",
    ]
