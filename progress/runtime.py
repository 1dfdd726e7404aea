"""The process-wide reporter and store, created lazily and recreated after ``fork``.

Nothing connects at import. The first event builds the reporter from ``ProgressSettings()``
(the environment) unless :func:`configure` was called; Celery's prefork children get a fresh one,
since threads and sockets do not survive ``fork``.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from progress.events import EventEnvelope, parse_event
from progress.redis_store import RedisEventStore, connect
from progress.reporter import Reporter
from progress.settings import ProgressSettings
from progress.store import EventWriter, StoredEvent

_lock = threading.RLock()
_settings: ProgressSettings | None = None
_writer_factory: Callable[[], EventWriter] | None = None
_reporter: Reporter | None = None
_store: EventWriter | None = None
#: Events stored by :func:`publish` in this process, by type (read by the workers' metrics).
published_by_type: Counter[str] = Counter()


def configure(
    settings: ProgressSettings | None = None,
    writer_factory: Callable[[], EventWriter] | None = None,
) -> None:
    """Set the settings (and optionally the store) this process reports with.

    Closes the current reporter first, so call it at start-up or between tests.
    """
    global _settings, _writer_factory
    shutdown()
    with _lock:
        _settings = settings
        _writer_factory = writer_factory


def get_settings() -> ProgressSettings:
    """The settings in force (read from the environment on first use)."""
    global _settings
    with _lock:
        if _settings is None:
            _settings = ProgressSettings()
        return _settings


def _make_writer() -> EventWriter:
    if _writer_factory is not None:
        return _writer_factory()
    settings = get_settings()
    return RedisEventStore(connect(settings.redis_url), settings.store_settings())


def get_reporter() -> Reporter:
    """This process's reporter, created on first use."""
    global _reporter
    reporter = _reporter
    if reporter is not None:
        return reporter
    settings = get_settings()
    with _lock:
        if _reporter is None:
            _reporter = Reporter(settings, _make_writer)
        return _reporter


def current_reporter() -> Reporter | None:
    """This process's reporter if one was created (never creates one)."""
    return _reporter


def get_store() -> EventWriter:
    """This process's writer for synchronous publishing."""
    global _store
    get_settings()
    with _lock:
        if _store is None:
            _store = _make_writer()
        return _store


def publish(
    event: EventEnvelope | dict[str, Any], recipients: Sequence[str] = ()
) -> list[StoredEvent]:
    """Validate, store and fan out ``event`` now; return where it was stored.

    ``event`` is an event model or a dict with a ``type``; ``recipients`` are further users
    whose streams receive it (a novel's members, for a content event).
    """
    parsed = parse_event(event)
    stored = get_store().append(parsed, recipients)
    published_by_type[parsed.type] += 1
    return stored


def shutdown(timeout: float = 5.0) -> None:
    """Send what is queued (up to ``timeout``) and forget the reporter and store."""
    global _reporter, _store
    with _lock:
        reporter, store, _reporter, _store = _reporter, _store, None, None
    if reporter is not None:
        reporter.pump.close(timeout)
    if store is not None:
        store.close()


def _forget_after_fork() -> None:
    global _reporter, _store, _lock
    _lock = threading.RLock()
    _reporter = None
    _store = None
    published_by_type.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
atexit.register(shutdown)
