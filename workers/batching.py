"""Merging chapter updates of a batch into few messages without losing which chapters changed."""

from __future__ import annotations

import time
from collections.abc import Callable


class ChapterUpdateBatcher:
    """Collects changed chapter numbers; releases them once per window (R4.6); pure."""

    def __init__(self, window_seconds: float, clock: Callable[[], float] = time.monotonic):
        self.window = window_seconds
        self.clock = clock
        self._pending: list[int] = []
        self._opened_at: float | None = None

    def add(self, number: int) -> list[list[int]]:
        """Record a changed chapter; return the batches whose window closed (zero or one)."""
        now = self.clock()
        if self._opened_at is None:
            self._opened_at = now
        if number not in self._pending:
            self._pending.append(number)
        if now - self._opened_at >= self.window:
            return self.flush()
        return []

    def flush(self) -> list[list[int]]:
        """Release whatever is pending."""
        batch, self._pending, self._opened_at = self._pending, [], None
        return [batch] if batch else []
