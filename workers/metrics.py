"""Prometheus metrics of a worker process: events emitted and throttled, outbox pending.

Celery's prefork pool runs tasks in child processes, and each keeps its own reporter, so each
process serves its OWN exporter (no shared multiprocess directory to clean up, no lost samples
when a child is replaced): the main process on ``WORKER_METRICS_PORT``, child ``n`` (Celery's
pool index, from 1) on ``WORKER_METRICS_PORT + n``; a replaced child reuses its index and port.
The threads and solo pools run everything in the main process. Values are read from the
progress library's plain counters at scrape time, so ``progress/`` stays free of this library.

Outbox pending: the outbox (SQL table ``sse_event_audit``) is counted by a function set with
:func:`set_outbox_pending_source`; until one is set the gauge is absent.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator

from celery.signals import worker_init, worker_process_init

# celery-types' log.pyi leaves out this public helper.
from celery.utils.log import current_process_index  # type: ignore[attr-defined]
from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from progress import runtime
from progress.events import EVENT_TYPES
from workers import outages

log = logging.getLogger("workers.metrics")

_KNOWN = frozenset(EVENT_TYPES)
_outbox_pending: Callable[[], int] | None = None


def set_outbox_pending_source(count: Callable[[], int] | None) -> None:
    """Use ``count()`` (rows of the outbox not yet pushed) for ``progress_outbox_pending``."""
    global _outbox_pending
    _outbox_pending = count


class ProgressCollector(Collector):
    """Reads this process's reporter (and the outbox source) at each scrape."""

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        reporter = runtime.current_reporter()
        emitted = CounterMetricFamily(
            "progress_events_emitted",
            "Events stored by this process (reporter and progress.publish), by type",
            labels=["type"],
        )
        throttled = CounterMetricFamily(
            "progress_updates_throttled", "progress.update() calls held or merged by the throttle"
        )
        dropped = CounterMetricFamily(
            "progress_events_dropped", "Events this process could not store and dropped"
        )
        counts = list(runtime.published_by_type.items())
        if reporter is not None:
            counts += list(reporter.pump.sent_by_type.items())
            throttled.add_metric([], reporter.throttled)
            dropped.add_metric([], reporter.pump.dropped)
        by_type: dict[str, int] = {}
        for kind, count in counts:
            label = kind if kind in _KNOWN else "other"
            by_type[label] = by_type.get(label, 0) + count
        for label, count in sorted(by_type.items()):
            emitted.add_metric([label], count)
        yield emitted
        yield throttled
        yield dropped
        yield from _outage_metrics()
        if _outbox_pending is not None:
            try:
                pending = _outbox_pending()
            except Exception as exc:  # a failing source must not break the scrape
                log.warning("outbox pending count failed: %s", exc)
            else:
                yield GaugeMetricFamily(
                    "progress_outbox_pending", "Outbox rows not pushed yet", value=pending
                )


def _outage_metrics() -> Iterator[CounterMetricFamily]:
    """This process's share of the outage detector's work (``workers.outages.counts``)."""
    families = {
        what: CounterMetricFamily(f"worker_dependency_{what}", help_text, labels=["dependency"])
        for what, help_text in _OUTAGE_COUNTERS.items()
    }
    for (dependency, what), count in sorted(outages.counts.items()):
        if what in families:
            families[what].add_metric([dependency], count)
    yield from families.values()


#: The outage counters: name (``worker_dependency_<what>_total``) and help.
_OUTAGE_COUNTERS = {
    "failures": "Task failures on a dependency (LLM unreachable or 5xx, database unreachable)",
    "outages": "Outages this process opened (the failure that reached the threshold)",
    "errors_sent": "system.error notices this process sent to writers of an outage",
    "recoveries_sent": "Recovery system.notification notices this process sent",
    "detector_errors": "Calls of the outage detector that failed (Redis down); logged",
}


def make_registry() -> CollectorRegistry:
    """A registry holding the progress collector and this process's CPU and memory
    (``process_*``, read from ``/proc/self`` at scrape: each exporter reports its own process)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(ProgressCollector())
    ProcessCollector(registry=registry)
    return registry


def serve(port: int, host: str) -> None:
    """Start this process's exporter on ``port`` (a daemon thread)."""
    start_http_server(port, host, registry=make_registry())
    log.info("metrics on %s:%d (pid %d)", host, port, os.getpid())


def exporter_port(base: int) -> int:
    """The port of the current process: ``base`` for the main one, ``base + n`` for child n."""
    return base + (current_process_index(base=1) or 0)


def _start(**_: object) -> None:
    from workers import resources

    settings = resources.settings()
    if settings.metrics_port:
        try:
            serve(exporter_port(settings.metrics_port), settings.metrics_host)
        except OSError as exc:
            log.error("could not start the metrics exporter: %s", exc)


def _start_main(**_: object) -> None:
    from workers import resources

    # One count of the outbox table per worker is enough: the main process reports it.
    set_outbox_pending_source(lambda: resources.audit_log().count_pending())
    _start()


def connect_exporters() -> None:
    """Start an exporter in the main worker process and in every prefork child."""
    worker_init.connect(_start_main, weak=False, dispatch_uid="workers.metrics.main")
    worker_process_init.connect(_start, weak=False, dispatch_uid="workers.metrics.child")
