"""Backpressure: the saturation decision and the per-stream progress pacer (clock injected)."""

from __future__ import annotations

import pytest

from api.event_meta import EventMeta
from api.hub.backpressure import Backpressure, BackpressureSettings, LoadMonitor, ProgressPacer
from api.stream.delivery import Delivery

pytestmark = pytest.mark.unit

SETTINGS = BackpressureSettings(
    lag_seconds=0.2,
    queue_depth=100,
    fanout_lag_seconds=0.5,
    recover_seconds=3.0,
    progress_interval=2.0,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def delivery(n: int, kind: str = "task.progress-updated", task: str = "t1", user: str = "u1"):
    meta = EventMeta(kind, user, None, "user", task, None)
    return Delivery(f"u:{user}", "e1", f"{n}-0", meta, b"{}")


def ids(deliveries: list[Delivery]) -> list[str]:
    return [d.id for d in deliveries]


def test_sustained_lag_saturates_and_a_calm_period_recovers() -> None:
    monitor = LoadMonitor(SETTINGS)
    for t in range(10):
        monitor.decide(t * 0.1, 0.3, 0)
    assert monitor.saturated
    for t in range(10, 40):  # calm, but not yet for 3 s in a row
        monitor.decide(t * 0.1, 0.0, 0)
    assert monitor.saturated
    for t in range(40, 80):
        monitor.decide(t * 0.1, 0.0, 0)
    assert not monitor.saturated


def test_one_long_pause_is_not_saturation() -> None:
    monitor = LoadMonitor(SETTINGS)
    for t in range(9):
        monitor.decide(t * 0.1, 0.0, 0)
    monitor.decide(1.0, 1.0, 0)  # one full GC of a second: mean lag 0.1 s
    assert not monitor.saturated


def test_a_deep_queue_saturates_at_once() -> None:
    monitor = LoadMonitor(SETTINGS)
    assert monitor.decide(0.0, 0.0, 150)


def test_a_hub_reading_behind_saturates_until_it_has_caught_up() -> None:
    monitor = LoadMonitor(SETTINGS)
    assert monitor.decide(0.0, 0.0, 0, fanout_lag=0.8)
    monitor.decide(0.1, 0.0, 0, fanout_lag=0.3)  # better, but not below half the threshold
    monitor.decide(5.0, 0.0, 0, fanout_lag=0.3)
    assert monitor.saturated
    monitor.decide(5.1, 0.0, 0, fanout_lag=0.1)
    assert not monitor.decide(8.2, 0.0, 0, fanout_lag=0.1)


def test_disabled_never_saturates() -> None:
    monitor = LoadMonitor(BackpressureSettings(0.2, 100, 0.5, 3.0, 2.0, enabled=False))
    assert not monitor.decide(0.0, 5.0, 10_000)


def test_not_saturated_every_update_passes() -> None:
    pacer = ProgressPacer(2.0, Clock())
    assert [ids(pacer.admit(delivery(n), saturated=False)) for n in (1, 2, 3)] == [
        ["1-0"],
        ["2-0"],
        ["3-0"],
    ]


def test_saturated_updates_of_a_task_are_coalesced_to_the_newest_per_window() -> None:
    clock = Clock()
    pacer = ProgressPacer(2.0, clock)
    assert ids(pacer.admit(delivery(1), saturated=True)) == ["1-0"]  # leading edge
    assert pacer.admit(delivery(2), saturated=True) == []
    assert pacer.admit(delivery(3), saturated=True) == []
    assert pacer.due() == []
    clock.now += 2.0
    assert ids(pacer.due()) == ["3-0"]  # 2 was superseded
    assert pacer.coalesced == 1


def test_a_terminal_event_goes_at_once_after_the_other_tasks_held_updates() -> None:
    pacer = ProgressPacer(2.0, Clock())
    pacer.admit(delivery(1, task="a"), saturated=True)
    pacer.admit(delivery(2, task="b"), saturated=True)
    pacer.admit(delivery(3, task="a"), saturated=True)
    pacer.admit(delivery(4, task="c"), saturated=True)
    done = delivery(5, kind="task.progress-completed", task="b")
    # b's held update is superseded by its end; a's and c's go first, in stream order
    assert ids(pacer.admit(done, saturated=True)) == ["3-0", "4-0", "5-0"]
    assert pacer.coalesced == 1  # b's update (a's first went out at once: leading edge)


def test_content_and_system_events_release_held_updates_first() -> None:
    pacer = ProgressPacer(2.0, Clock())
    pacer.admit(delivery(1, task="a"), saturated=True)
    pacer.admit(delivery(2, task="a"), saturated=True)
    chapter = delivery(3, kind="content.chapter-updated", task="a")
    assert ids(pacer.admit(chapter, saturated=True)) == ["2-0", "3-0"]


def test_other_streams_are_not_held() -> None:
    pacer = ProgressPacer(2.0, Clock())
    pacer.admit(delivery(1, user="u1"), saturated=True)
    pacer.admit(delivery(2, user="u1"), saturated=True)
    assert ids(pacer.admit(delivery(3, user="u2"), saturated=True)) == ["3-0"]
    notice = delivery(4, kind="system.notification", task="", user="u2")
    assert ids(pacer.admit(notice, saturated=True)) == ["4-0"]


def test_after_recovery_the_next_update_flushes_what_is_held() -> None:
    pacer = ProgressPacer(2.0, Clock())
    pacer.admit(delivery(1), saturated=True)
    pacer.admit(delivery(2, task="t2"), saturated=True)
    assert ids(pacer.admit(delivery(3), saturated=False)) == ["2-0", "3-0"]
    assert pacer.holding == 0


def test_the_window_widens_while_the_hub_reads_behind_and_resets_after() -> None:
    backpressure = Backpressure(SETTINGS, lambda: ())
    assert backpressure.next_interval(0.0) == 2.0
    backpressure.monitor.decide(0.0, 0.0, 0, fanout_lag=1.0)
    widths = []
    for _ in range(4):
        backpressure.pacer.interval = backpressure.next_interval(1.0)
        widths.append(backpressure.pacer.interval)
    assert widths == [4.0, 8.0, 8.0, 8.0]  # capped at the maximum
    assert backpressure.next_interval(0.3) == 8.0  # caught up a little: kept
    backpressure.monitor.saturated = False
    assert backpressure.next_interval(0.0) == 2.0
