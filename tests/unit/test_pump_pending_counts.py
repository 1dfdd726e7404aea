"""The sender thread and WorkflowWriter when counting fails after a batch's events were stored
(issue 21, left out): the counting is retried on the events' retry path, within the retry
time and beyond it (kept at the queue's head), and the events are never stored twice."""

from __future__ import annotations

from typing import cast

import pytest

from progress.errors import StoreUnavailable
from progress.events import TaskCompleted, TaskStarted
from progress.keys import user_stream
from progress.pump import EventPump
from progress.store import MemoryEventStore
from progress.workflow import Tally, Transition, WorkflowCounter, WorkflowKey, WorkflowWriter

pytestmark = pytest.mark.unit


class FlakyCounter:
    """Counts in memory; the first ``failures`` calls find Redis gone."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.applied: list[tuple[str, str]] = []

    def apply(
        self,
        changes: dict[WorkflowKey, list[Transition]],
        *,
        now: bool = False,  # noqa: ARG002
    ) -> dict[WorkflowKey, Tally]:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("Redis went away")
        self.applied += [(t.kind, t.task_id) for found in changes.values() for t in found]
        return {}

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("failures", "retry_seconds"), [(2, 5.0), (6, 0.05)], ids=["within-retry", "beyond-retry"]
)
def test_counting_is_retried_and_the_events_stored_once(
    failures: int, retry_seconds: float
) -> None:
    store, counter = MemoryEventStore(), FlakyCounter(failures)
    writer = WorkflowWriter(store, cast(WorkflowCounter, counter))
    pump = EventPump(lambda: writer, lambda: None, retry_seconds=retry_seconds)
    env = {"user_id": "ann", "workflow_id": "wf1", "task_id": "t1"}
    pump.submit(TaskStarted(**env, task_name="x"))
    pump.submit(TaskCompleted(**env, duration_seconds=1))
    try:
        assert pump.flush(20)
    finally:
        pump.close()

    assert len(store.read_after(user_stream("ann"), "0-0", 100)) == 2
    assert counter.applied == [("started", "t1"), ("completed", "t1")]
    assert pump.dropped == 0
    assert (pump.kept > 0) == (retry_seconds < 1)
