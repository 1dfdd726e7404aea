"""The Celery application: ``celery -A workers.celery_app:app worker`` (and ``beat``)."""

from __future__ import annotations

from celery import Celery

import progress
from workers.metrics import connect_exporters
from workers.novel_status import connect_novel_status
from workers.outages import connect_outage_signals
from workers.outbox_signals import connect_outbox_signals
from workers.settings import WorkerSettings


def create_app(settings: WorkerSettings | None = None) -> Celery:
    """A configured Celery app; connects to nothing until used."""
    settings = settings or WorkerSettings()
    app = Celery("infinitescribe", set_as_current=False)
    app.conf.update(
        broker_url=settings.redis_db_url(settings.broker_db),
        result_backend=settings.redis_db_url(settings.result_db),
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_send_sent_event=True,
        worker_send_task_events=True,
        task_soft_time_limit=settings.soft_time_limit_seconds,
        task_time_limit=settings.soft_time_limit_seconds + 30,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        result_expires=24 * 3600,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_seconds},
        result_backend_transport_options={
            "visibility_timeout": settings.visibility_timeout_seconds
        },
        beat_schedule={
            "watchdog": {"task": "workers.watchdog", "schedule": settings.watchdog_seconds},
        },
    )
    app.conf["worker_settings"] = settings
    app.autodiscover_tasks(["workers"], related_name="tasks", force=True)
    connect_exporters()
    connect_outbox_signals()  # the app's schema check, before the library's
    progress.install(app, settings.journal_settings())
    connect_novel_status()
    connect_outage_signals()
    return app


def __getattr__(name: str) -> Celery:
    # ``celery -A workers.celery_app:app``: built on first access, from the environment.
    if name == "app":
        from workers import resources

        return resources.celery_app()
    raise AttributeError(name)
