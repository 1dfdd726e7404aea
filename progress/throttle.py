"""Per-task throttle for progress updates: leading edge, coalesced trailing edge; pure.

The first update of a task goes out at once. Updates inside the following ``interval`` are
held, each replacing the last, and the one held is released when the window closes (the caller
asks :meth:`ProgressThrottle.due`), so the final percent of a burst is never lost. Percent never
goes backwards within a run: a lower value is raised to the highest seen. The clock is injected.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class _Window(Generic[T]):
    last_sent: float
    highest: float
    pending: tuple[float, T] | None = None


class ProgressThrottle(Generic[T]):
    """At most one update per ``interval`` seconds per key; not thread-safe (lock outside)."""

    def __init__(self, interval: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self.clock = clock
        self._windows: dict[Hashable, _Window[T]] = {}

    def offer(self, key: Hashable, percent: float, update: T) -> tuple[float, T] | None:
        """Return ``(percent, update)`` to send now, or None when it is held for later."""
        now = self.clock()
        window = self._windows.get(key)
        if window is None:
            self._windows[key] = _Window(last_sent=now, highest=percent)
            return percent, update
        if percent < window.highest:
            percent = window.highest
        else:
            window.highest = percent
        if now - window.last_sent >= self.interval:
            window.pending = None  # superseded by this newer update
            window.last_sent = now
            return percent, update
        window.pending = (percent, update)
        return None

    def due(self) -> list[tuple[Hashable, float, T]]:
        """Held updates whose window has closed; each is released once."""
        now = self.clock()
        released = []
        for key, window in self._windows.items():
            if window.pending is not None and now - window.last_sent >= self.interval:
                percent, update = window.pending
                window.pending = None
                window.last_sent = now
                released.append((key, percent, update))
        return released

    def next_deadline(self) -> float | None:
        """Clock time when the next held update falls due, or None if nothing is held."""
        deadlines = [
            w.last_sent + self.interval for w in self._windows.values() if w.pending is not None
        ]
        return min(deadlines, default=None)

    def flush(self, key: Hashable) -> tuple[float, T] | None:
        """Release the update held for ``key`` now (before a terminal event), if any."""
        window = self._windows.get(key)
        if window is None or window.pending is None:
            return None
        pending, window.pending = window.pending, None
        window.last_sent = self.clock()
        return pending

    def holding(self, key: Hashable) -> bool:
        """True when an update of ``key`` is held for the end of its window."""
        window = self._windows.get(key)
        return window is not None and window.pending is not None

    def highest(self, key: Hashable) -> float:
        """The highest percent seen for ``key`` (0 when none)."""
        window = self._windows.get(key)
        return window.highest if window else 0.0

    def forget(self, key: Hashable) -> None:
        """Drop the state of ``key`` (its run ended); a new run starts from 0%."""
        self._windows.pop(key, None)
