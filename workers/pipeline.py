"""Pure text steps of novel creation: outline plans from generated words, chapter summaries."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ChapterPlan:
    """What the outline says one chapter is about."""

    number: int
    title: str
    plan: str


def chapter_title(number: int, words: list[str]) -> str:
    """``Chapter 2: The Tide Rose`` from the first words of its plan."""
    head = " ".join(word.capitalize() for word in words[:3])
    return f"Chapter {number}: {head}" if head else f"Chapter {number}"


def plan_chapters(words: list[str], chapter_count: int) -> list[ChapterPlan]:
    """Split an outline's words evenly into ``chapter_count`` plans."""
    if chapter_count < 1:
        raise ValueError("chapter_count must be at least 1")
    size = max(1, len(words) // chapter_count)
    plans = []
    for index in range(chapter_count):
        part = (
            words[index * size : (index + 1) * size]
            if index < chapter_count - 1
            else words[index * size :]
        )
        plans.append(ChapterPlan(index + 1, chapter_title(index + 1, part), " ".join(part)))
    return plans


def summarize(text: str, words: int = 24) -> str:
    """The first ``words`` words of ``text``, marked when cut."""
    parts = text.split()
    summary = " ".join(parts[:words])
    return summary + "…" if len(parts) > words else summary


def percent(done: int, total: int) -> float:
    """Progress of ``done`` out of ``total``, within 0..100."""
    return 100.0 if total <= 0 else min(100.0, 100.0 * done / total)
