"""Per-process resources of a worker (or of the API's contracts): created lazily, and afresh
after ``fork`` (Celery's prefork children), since sockets and engines do not survive it."""

from __future__ import annotations

import os
import threading
from functools import cache

import redis
from celery import Celery

from progress.keys import KeyLayout
from progress.outbox import OutboxWriter
from progress.redis_store import RedisEventStore, connect
from progress.runtime import get_settings as get_progress_settings
from workers.audit import AuditLog
from workers.db import make_engine, make_sessions
from workers.llm import LLMClient, make_llm_client
from workers.novels import NovelRepository
from workers.outbox import SqlJournal
from workers.sealing import DEV_AUDIT_KEY, Sealer, parse_keys
from workers.settings import WorkerSettings

_lock = threading.Lock()


_configured: WorkerSettings | None = None


def configure(worker_settings: WorkerSettings | None) -> None:
    """Use these settings instead of the environment's (tests, embedding); None to go back."""
    global _configured
    close()
    _configured = worker_settings
    reset()


@cache
def settings() -> WorkerSettings:
    """The worker settings: configured ones, else read from the environment once."""
    return _configured or WorkerSettings()


@cache
def celery_app() -> Celery:
    """The Celery app for these settings."""
    from workers.celery_app import create_app

    return create_app(settings())


@cache
def layout() -> KeyLayout:
    """Redis key names shared with the progress library."""
    return KeyLayout(get_progress_settings().key_prefix)


@cache
def novels() -> NovelRepository:
    """The novel repository on this process's engine."""
    return NovelRepository(make_sessions(make_engine(settings().database_url)))


@cache
def audit_log() -> AuditLog:
    """The audit log (outbox table) on its own engine, sealing with the configured keys."""
    current = settings()
    keys = parse_keys(current.audit_encryption_keys) or [DEV_AUDIT_KEY]
    return AuditLog(make_sessions(make_engine(current.database_url)), Sealer(keys))


@cache
def journal() -> SqlJournal:
    """The outbox journal of this process (group commit per the settings)."""
    current = settings()
    batching = (current.outbox_batch_wait_ms / 1000, current.outbox_batch_max)
    return SqlJournal(
        audit_log(),
        batching if current.outbox_group_commit else None,
        current.outbox_crash_after_commit,
    )


def outbox_writer() -> OutboxWriter:
    """A new event writer that journals important events before pushing them to Redis."""
    progress_settings = get_progress_settings()
    store = RedisEventStore(
        connect(progress_settings.redis_url), progress_settings.store_settings()
    )
    return OutboxWriter(store, journal())


@cache
def outbox_store() -> OutboxWriter:
    """This process's outbox writer for synchronous publishing."""
    return outbox_writer()


@cache
def redis_client() -> redis.Redis:
    """A sync Redis client for cancel flags and reader sets."""
    return connect(settings().redis_url)


@cache
def progress_store() -> RedisEventStore:
    """The event store, for the watchdog's reads."""
    progress_settings = get_progress_settings()
    return RedisEventStore(connect(progress_settings.redis_url), progress_settings.store_settings())


@cache
def llm() -> LLMClient:
    """The text generator chosen by the settings."""
    return make_llm_client(settings())


def close() -> None:
    """Close the connections this process opened, then forget them."""
    if redis_client.cache_info().currsize:
        redis_client().close()
    if progress_store.cache_info().currsize:
        progress_store().client.close()
    if celery_app.cache_info().currsize:
        celery_app().close()
    if novels.cache_info().currsize:
        novels().dispose()
    if outbox_store.cache_info().currsize:
        outbox_store().inner.close()
    if journal.cache_info().currsize:
        journal().close()
    if audit_log.cache_info().currsize:
        audit_log().dispose()
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
            audit_log,
            journal,
            outbox_store,
        ):
            factory.cache_clear()


os.register_at_fork(after_in_child=reset)
