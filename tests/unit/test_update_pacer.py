"""Coarser progress for slow links (issue 5: ``progress_interval_ms``): one update per task per
interval, the newest kept, and nothing else of the task ever held back."""

from __future__ import annotations

import pytest

from api.event_meta import EventMeta
from api.stream.connection import UpdatePacer
from api.stream.delivery import Delivery

pytestmark = pytest.mark.unit


def event(kind: str, task: str, n: int) -> Delivery:
    meta = EventMeta(
        type=kind, user_id="u1", session_id=None, audience="user", task_id=task, novel_id=None
    )
    return Delivery("u:u1", "e1", f"{n}-0", meta, b"{}")


def update(task: str, n: int) -> Delivery:
    return event("task.progress-updated", task, n)


def test_without_interval_every_update_goes_out() -> None:
    pacer = UpdatePacer(0)
    assert all(pacer.admit(update("t", n), now=0.0) for n in range(10))


def test_burst_sends_first_then_only_the_newest_when_the_interval_ends() -> None:
    pacer = UpdatePacer(1.0)
    assert pacer.admit(update("t", 1), now=10.0)
    assert not pacer.admit(update("t", 2), now=10.1)
    assert not pacer.admit(update("t", 3), now=10.2)
    assert pacer.wait(now=10.2) == pytest.approx(0.8)
    assert pacer.due(now=10.5) == []
    assert [d.id for d in pacer.due(now=11.0)] == ["3-0"]
    assert pacer.wait(now=11.0) == float("inf")


def test_tasks_are_paced_separately() -> None:
    pacer = UpdatePacer(1.0)
    assert pacer.admit(update("a", 1), now=0.0)
    assert pacer.admit(update("b", 2), now=0.1)
    assert not pacer.admit(update("a", 3), now=0.2)


def test_terminal_event_takes_the_held_update_first_and_resets_the_task() -> None:
    pacer = UpdatePacer(5.0)
    assert pacer.admit(update("t", 1), now=0.0)
    assert not pacer.admit(update("t", 2), now=0.5)
    held = pacer.take(event("task.progress-completed", "t", 3))
    assert held is not None and held.id == "2-0"
    assert pacer.due(now=100.0) == []
    assert pacer.admit(update("t", 4), now=0.6)
