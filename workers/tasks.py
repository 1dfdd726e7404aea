"""AI creation tasks. Thin: validate, generate, report progress from tokens produced."""

from __future__ import annotations

from celery import shared_task

import progress
from workers.llm import LocalGenerator
from workers.settings import WorkerSettings


def _generator() -> LocalGenerator:
    return LocalGenerator(WorkerSettings().local_tokens_per_second)


@shared_task(name="workers.generate_outline")
@progress.report_progress(estimated_seconds=5)
def generate_outline(premise: str, chapter_count: int = 3, tokens_per_chapter: int = 80) -> dict:
    """Outline a novel: one paragraph per chapter; progress is tokens written / tokens wanted."""
    if not premise.strip():
        raise ValueError("premise must not be empty")
    target = chapter_count * tokens_per_chapter
    written = 0
    chapters: list[str] = []
    for number in range(1, chapter_count + 1):
        words: list[str] = []
        prompt = f"Outline chapter {number} of: {premise}"
        for token in _generator().stream(prompt, tokens_per_chapter):
            words.append(token)
            written += 1
            progress.update(
                100 * written / target, f"Outlining chapter {number}", stage="outlining"
            )
        chapters.append(" ".join(words))
    return {"summary": f"Outline of {chapter_count} chapters", "chapters": chapters}
