"""Group commit: concurrent writers share one transaction instead of one each.

Callers block in :meth:`GroupCommitter.submit` until their items are committed. One thread
takes everything queued, waits at most ``max_wait`` seconds for more (never when ``max_batch``
items are already there), commits it all in one call, and wakes each caller with its outcome.
A lone event therefore waits ``max_wait`` at most; under load, batches grow by themselves
while the previous commit runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")


class GroupCommitter(Generic[T]):
    """Batches ``submit`` calls from many threads into calls of ``commit``."""

    def __init__(
        self, commit: Callable[[list[T]], object], max_wait: float = 0.002, max_batch: int = 500
    ) -> None:
        self._commit = commit
        self._max_wait = max_wait
        self._max_batch = max_batch
        self._queue: list[tuple[Sequence[T], Future[None]]] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, items: Sequence[T], timeout: float = 30.0) -> None:
        """Return once ``items`` are committed; raise what the commit raised."""
        done: Future[None] = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("group committer is closed")
            self._queue.append((items, done))
            self._start()
            self._cond.notify_all()
        done.result(timeout)

    def defer(self, items: Sequence[T]) -> None:
        """Queue ``items`` for the next commit without waiting (errors are the commit's to log)."""
        with self._cond:
            if self._closed:
                raise RuntimeError("group committer is closed")
            self._queue.append((items, Future()))
            self._start()
            self._cond.notify_all()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Commit what is queued, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(10)

    def _size(self) -> int:
        return sum(len(items) for items, _ in self._queue)

    def _take(self) -> list[tuple[Sequence[T], Future[None]]] | None:
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            deadline = time.monotonic() + self._max_wait
            while self._size() < self._max_batch and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            taken, self._queue = self._queue, []
            return taken

    def _run(self) -> None:
        while (taken := self._take()) is not None:
            try:
                self._commit([item for items, _ in taken for item in items])
            except Exception as exc:
                for _, done in taken:
                    done.set_exception(exc)
                continue
            for _, done in taken:
                done.set_result(None)
