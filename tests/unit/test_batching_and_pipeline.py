"""Issue 4 (R4.6): batched chapter updates keep every chapter; pure text steps."""

from __future__ import annotations

import pytest

from workers.batching import ChapterUpdateBatcher
from workers.pipeline import percent, plan_chapters, summarize

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_twenty_revisions_inside_windows_become_few_messages_naming_every_chapter() -> None:
    clock = Clock()
    batcher = ChapterUpdateBatcher(window_seconds=2.0, clock=clock)
    released: list[list[int]] = []
    for number in range(1, 21):
        clock.now += 0.5
        released += batcher.add(number)
    released += batcher.flush()

    assert len(released) <= 5
    assert sorted(n for batch in released for n in batch) == list(range(1, 21))


def test_a_chapter_changed_twice_in_a_window_is_named_once() -> None:
    batcher = ChapterUpdateBatcher(window_seconds=10.0, clock=Clock())
    batcher.add(3)
    batcher.add(3)
    assert batcher.flush() == [[3]]
    assert batcher.flush() == []


def test_outline_words_split_into_one_plan_per_chapter() -> None:
    plans = plan_chapters([f"w{i}" for i in range(10)], 3)
    assert [p.number for p in plans] == [1, 2, 3]
    assert " ".join(p.plan for p in plans).split() == [f"w{i}" for i in range(10)]
    assert plans[0].title == "Chapter 1: W0 W1 W2"
    with pytest.raises(ValueError):
        plan_chapters(["a"], 0)


def test_summary_and_percent() -> None:
    assert summarize("one two three", words=2) == "one two…"
    assert summarize("one two", words=2) == "one two"
    assert percent(5, 10) == 50
    assert percent(20, 10) == 100
    assert percent(0, 0) == 100
