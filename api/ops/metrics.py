"""Prometheus metrics of one API process, on its own registry (one per app, so tests can build
many apps in one process). Served by ``GET /metrics`` (``api/routes/metrics.py``).

Labels are bounded: event types outside the catalogue count as ``other``; reasons and groups
are fixed strings chosen in code; never a user id or a connection id. Values that exist only
as state (open streams' queue depths, backpressure) are read at scrape time by a collector,
so the hot path pays nothing for them. CPU and memory of the process (``process_*``) come from
prometheus-client's ``ProcessCollector`` on the same registry, read from ``/proc`` at scrape.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter as TypeCounter
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from api.event_meta import EventMeta
from progress.events import EVENT_TYPES, TERMINAL_TASK_TYPES

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
QUEUE_DEPTH_BUCKETS = (0, 1, 5, 10, 50, 100, 250, 500, 1000)
REPLAY_SIZE_BUCKETS = (0, 1, 10, 50, 100, 500, 1000, 5000)
#: How late the event loop ran a due timer: fine at the bottom, where a healthy loop is.
LOOP_DELAY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
RTT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_KNOWN_TYPES = frozenset(EVENT_TYPES)
#: Latency samples kept for the health report's percentiles.
_RECENT_SAMPLES = 2048


def type_label(event_type: str) -> str:
    """``event_type`` when it is in the catalogue, else ``other`` (bounded cardinality)."""
    return event_type if event_type in _KNOWN_TYPES else "other"


def type_group(event_type: str) -> str:
    """Latency group of an event type: ``terminal``, ``progress``, ``system`` or ``other``."""
    if event_type in TERMINAL_TASK_TYPES:
        return "terminal"
    if event_type == "task.progress-updated":
        return "progress"
    if event_type.startswith("system."):
        return "system"
    return "other"


class LoadView(Protocol):
    """What the scrape-time collector reads from the running process."""

    def queue_depths(self) -> Iterable[int]:
        """Items waiting in each open stream's queue."""
        ...

    def backpressure(self) -> tuple[bool, float]:
        """(saturated now, event-loop lag in seconds)."""
        ...


class LatencyTally:
    """A histogram kept as plain numbers, exported at scrape time.

    The relay records a sample per event read and one per event per recipient (40,000 a
    second in a broadcast); prometheus-client's ``Histogram.observe`` and ``Counter.inc`` take
    a lock each and cost about 7 us together, more than writing the frame.
    """

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative counts by upper bound, ``+Inf`` last (Prometheus' form)."""
        cumulative, running = [], 0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            cumulative.append((bound, float(running)))
        return cumulative


class _DeliveryCollector(Collector):
    def __init__(self, metrics: ApiMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        relayed = CounterMetricFamily(
            "sse_events_relayed", "Live events written to streams, by type", labels=["type"]
        )
        for kind, count in sorted(self._metrics.relayed_by_type.items()):
            relayed.add_metric([kind], count)
        yield relayed
        latency = HistogramMetricFamily(
            "sse_delivery_latency_seconds",
            "Event occurred_at to written to the stream, by type group",
            labels=["group"],
        )
        for group, tally in sorted(self._metrics.latency_by_group.items()):
            latency.add_metric([group], tally.buckets(), tally.total)
        yield latency
        lag = self._metrics.fanout_lag
        yield HistogramMetricFamily(
            "sse_fanout_lag_seconds",
            "Event occurred_at to received by this instance's hub",
            buckets=lag.buckets(),
            sum_value=lag.total,
        )
        delay = self._metrics.loop_delay
        yield HistogramMetricFamily(
            "sse_event_loop_delay_seconds",
            "How late the backpressure monitor's 100 ms timer ran, 10 samples a second",
            buckets=delay.buckets(),
            sum_value=delay.total,
        )


class _StateCollector(Collector):
    def __init__(self, view: Callable[[], LoadView | None]) -> None:
        self._view = view

    def collect(self) -> Iterator[GaugeMetricFamily | GaugeHistogramMetricFamily]:
        view = self._view()
        if view is None:
            return
        depths = list(view.queue_depths())
        buckets: list[tuple[str, float]] = []
        for bound in QUEUE_DEPTH_BUCKETS:
            buckets.append((str(float(bound)), float(sum(d <= bound for d in depths))))
        buckets.append(("+Inf", float(len(depths))))
        yield GaugeHistogramMetricFamily(
            "sse_connection_queue_depth",
            "Open streams by the number of events waiting in their queue",
            buckets=buckets,
            gsum_value=float(sum(depths)),
        )
        yield GaugeMetricFamily(
            "sse_connection_queue_depth_max",
            "Deepest queue of any open stream",
            value=float(max(depths, default=0)),
        )
        saturated, lag = view.backpressure()
        yield GaugeMetricFamily(
            "sse_backpressure_active", "1 while the instance is saturated", value=float(saturated)
        )
        yield GaugeMetricFamily(
            "sse_event_loop_lag_seconds", "Event-loop lag, mean of the last second", value=lag
        )


class ApiMetrics:
    """Every metric of the API process; methods are the hooks the tier calls."""

    def __init__(self, instance_id: str, max_connections: int) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.instance_id = instance_id
        r = self.registry
        # process_cpu_seconds_total, process_resident_memory_bytes, open fds, start time
        ProcessCollector(registry=r)
        self.open = Gauge(
            "sse_connections_open", "Open SSE streams", ["instance_id"], registry=r
        ).labels(instance_id)
        Gauge(
            "sse_connections_max",
            "Most streams this instance accepts (SSE_MAX_CONNECTIONS_PER_INSTANCE)",
            ["instance_id"],
            registry=r,
        ).labels(instance_id).set(max_connections)
        self._opened = Counter(
            "sse_connections_opened", "Streams opened", ["instance_id"], registry=r
        ).labels(instance_id)
        self._closed = Counter(
            "sse_connections_closed",
            "Streams ended, by reason",
            ["instance_id", "reason"],
            registry=r,
        )
        self._refused = Counter(
            "sse_connections_refused",
            "Stream opens refused, by reason",
            ["instance_id", "reason"],
            registry=r,
        )
        self._token_refused = Counter(
            "sse_token_requests_refused",
            "sse_token requests refused, by reason",
            ["reason"],
            registry=r,
        )
        self._slow = Counter(
            "sse_slow_client_disconnects",
            "Streams closed because their queue overflowed",
            ["instance_id"],
            registry=r,
        ).labels(instance_id)
        self._coalesced = Counter(
            "sse_progress_coalesced",
            "Progress updates not relayed because a newer one of the task replaced them",
            ["where"],
            registry=r,
        )
        self.redis_rtt = Histogram(
            "sse_redis_rtt_seconds", "Redis PING round trip", buckets=RTT_BUCKETS, registry=r
        )
        self.redis_up = Gauge("sse_redis_up", "1 when the last Redis PING answered", registry=r)
        self.database_up = Gauge(
            "sse_database_up", "1 when the last SELECT 1 on the database answered", registry=r
        )
        self._replays = Counter(
            "sse_history_replays", "Catch-ups from history, by outcome", ["outcome"], registry=r
        )
        self._replay_size = Histogram(
            "sse_history_replay_events",
            "Events sent by one catch-up from history",
            buckets=REPLAY_SIZE_BUCKETS,
            registry=r,
        )
        self._notifications = Counter(
            "sse_system_notifications_sent",
            "System notifications and errors sent by operators, by type and level",
            ["type", "level"],
            registry=r,
        )
        self._responses = Counter(
            "http_responses", "HTTP responses by status class", ["code"], registry=r
        )
        self._rate_limiter_errors = Counter(
            "sse_rate_limiter_errors",
            "Rate-limit checks that failed open because Redis did not answer",
            registry=r,
        )
        self._view: LoadView | None = None
        r.register(_StateCollector(lambda: self._view))
        self.recent_latency: deque[float] = deque(maxlen=_RECENT_SAMPLES)
        self.relayed_by_type: TypeCounter[str] = TypeCounter()
        self.latency_by_group: dict[str, LatencyTally] = {}
        self.fanout_lag = LatencyTally(LATENCY_BUCKETS)
        #: Filled by the backpressure monitor (api.hub.backpressure) while the services run.
        self.loop_delay = LatencyTally(LOOP_DELAY_BUCKETS)
        r.register(_DeliveryCollector(self))

    def watch(self, view: LoadView) -> None:
        """Read queue depths and backpressure from ``view`` at each scrape."""
        self._view = view

    def opened(self) -> None:
        """A stream started."""
        self._opened.inc()
        self.open.inc()

    def closed(self, reason: str) -> None:
        """A stream ended for ``reason``."""
        self.open.dec()
        self._closed.labels(self.instance_id, reason).inc()
        if reason == "slow_client":
            self._slow.inc()

    def refused(self, reason: str) -> None:
        """A stream open was refused."""
        self._refused.labels(self.instance_id, reason).inc()

    def token_refused(self, reason: str) -> None:
        """An sse_token request was refused."""
        self._token_refused.labels(reason).inc()

    def delivered(self, meta: EventMeta) -> None:
        """A live event was written to a stream (called after the write)."""
        self.relayed_by_type[type_label(meta.type)] += 1
        if meta.occurred_at is None:
            return
        group = type_group(meta.type)
        tally = self.latency_by_group.get(group)
        if tally is None:
            tally = self.latency_by_group[group] = LatencyTally(LATENCY_BUCKETS)
        latency = max(0.0, time.time() - meta.occurred_at)
        tally.observe(latency)
        self.recent_latency.append(latency)

    def routed(self, meta: EventMeta) -> None:
        """The hub received a live event."""
        if meta.occurred_at is not None:
            self.fanout_lag.observe(max(0.0, time.time() - meta.occurred_at))

    def coalesced(self, where: str, count: int = 1) -> None:
        """``count`` progress updates were superseded (``where``: ``relay`` or ``queue``)."""
        self._coalesced.labels(where).inc(count)

    def replayed(self, events: int, reset: bool) -> None:
        """A catch-up sent ``events`` from history (``reset``: part of it was lost)."""
        self._replays.labels("reset" if reset else "replay").inc()
        self._replay_size.observe(events)

    def redis_ping(self, seconds: float | None) -> None:
        """A PING took ``seconds``; None when Redis did not answer."""
        self.redis_up.set(0 if seconds is None else 1)
        if seconds is not None:
            self.redis_rtt.observe(seconds)

    def database_ping(self, seconds: float | None) -> None:
        """A SELECT 1 took ``seconds``; None when the database did not answer."""
        self.database_up.set(0 if seconds is None else 1)

    def notification_sent(self, event_type: str, level: str) -> None:
        """An operator sent a system notification or error."""
        self._notifications.labels(event_type, level).inc()

    def response(self, status: int) -> None:
        """An HTTP response started with ``status``."""
        self._responses.labels(f"{status // 100}xx").inc()

    def rate_limiter_error(self) -> None:
        """A rate-limit check could not reach Redis and let the request through."""
        self._rate_limiter_errors.inc()
