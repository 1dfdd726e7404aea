"""Per-process resources of a worker (or of the API's contracts): created lazily, and afresh
after ``fork`` (Celery's prefork children), since sockets and engines do not survive it."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from celery import Celery

from progress.audit_log import AuditLog
from progress.journal_sql import SqlJournal
from progress.journaling import Journaling
from progress.keys import KeyLayout
from progress.outbox import OutboxWriter
from progress.redis_store import RedisEventStore, SyncClient, connect
from progress.runtime import get_settings as get_progress_settings
from progress.sql import make_engine, make_sessions
from workers.llm import LLMClient, make_llm_client
from workers.novels import NovelRepository
from workers.outages import OutageDetector, WatchedLLM
from workers.settings import WorkerSettings

_lock = threading.RLock()

T = TypeVar("T")


class _Resource(Generic[T]):
    """A factory's one result per process; the first call creates it under a lock, since
    the threads pool calls in parallel and a second client or engine would leak."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._value: T | None = None
        self.__doc__ = factory.__doc__

    def __call__(self) -> T:
        value = self._value
        if value is not None:
            return value
        with _lock:
            if self._value is None:
                self._value = self._factory()
            return self._value

    @property
    def created(self) -> bool:
        """True once the resource exists in this process."""
        return self._value is not None

    def forget(self) -> None:
        """Drop it (without closing it)."""
        self._value = None


_configured: WorkerSettings | None = None


def configure(worker_settings: WorkerSettings | None) -> None:
    """Use these settings instead of the environment's (tests, embedding); None to go back."""
    global _configured
    close()
    _configured = worker_settings
    reset()


@_Resource
def settings() -> WorkerSettings:
    """The worker settings: configured ones, else read from the environment once."""
    return _configured or WorkerSettings()


@_Resource
def celery_app() -> Celery:
    """The Celery app for these settings."""
    from workers.celery_app import create_app

    return create_app(settings())


@_Resource
def layout() -> KeyLayout:
    """Redis key names shared with the progress library."""
    return KeyLayout(get_progress_settings().key_prefix)


@_Resource
def novels() -> NovelRepository:
    """The novel repository on this process's engine."""
    return NovelRepository(make_sessions(make_engine(settings().database_url)))


@_Resource
def journaling() -> Journaling:
    """The progress journal's objects for this app's database (the API's and the operators'
    side; a worker's own events go through ``progress.install``'s)."""
    return Journaling(settings().journal_settings())


def audit_log() -> AuditLog:
    """The audit log (the journal's table), sealing with the configured keys."""
    return journaling().audit_log()


def journal() -> SqlJournal:
    """The outbox journal of this process (group commit per the settings)."""
    return journaling().journal()


@_Resource
def outbox_store() -> OutboxWriter:
    """This process's outbox writer for synchronous publishing."""
    return journaling().writer()


@_Resource
def redis_client() -> SyncClient:
    """A sync Redis client for cancel flags and reader sets."""
    return connect(settings().redis_url)


@_Resource
def progress_store() -> RedisEventStore:
    """The event store, for the watchdog's reads."""
    progress_settings = get_progress_settings()
    return RedisEventStore(connect(progress_settings.redis_url), progress_settings.store_settings())


@_Resource
def llm() -> LLMClient:
    """The text generator chosen by the settings; its answers end an LLM outage."""
    return WatchedLLM(make_llm_client(settings()))


@_Resource
def outage_detector() -> OutageDetector:
    """The shared outage detector (Redis), with the settings' threshold and periods."""
    return OutageDetector(
        redis_client(),
        layout(),
        settings().outage_failure_threshold,
        settings().outage_window_seconds,
        settings().outage_recovery_seconds,
    )


def close() -> None:
    """Close the connections this process opened, then forget them."""
    if redis_client.created:
        redis_client().close()
    if progress_store.created:
        progress_store().client.close()
    if celery_app.created:
        celery_app().close()
    if novels.created:
        novels().dispose()
    if outbox_store.created:
        outbox_store().inner.close()
    if journaling.created:
        journaling().close()
    reset()


def reset() -> None:
    """Forget every resource (after fork: the parent's sockets are not this process's)."""
    with _lock:
        for factory in (
            settings,
            celery_app,
            layout,
            novels,
            redis_client,
            progress_store,
            llm,
            outage_detector,
            journaling,
            outbox_store,
        ):
            factory.forget()


os.register_at_fork(after_in_child=reset)
