"""Backpressure: notice when this instance is saturated, and relay fewer progress updates.

    monitor task ── every 100 ms: event-loop lag (how late its own sleep woke up, averaged
                    over the last second; each sample also goes to ``on_lag``, the
                    ``sse_event_loop_delay_seconds`` histogram), the deepest stream queue
                    (every 500 ms), and
                    the fan-out lag
                    (age of the oldest event the hub read since the last sample)
                    ──▶ LoadMonitor.decide() ──▶ saturated yes/no
    hub._route ──▶ ProgressPacer.admit(delivery, saturated) ──▶ deliveries to offer now
    pacer task ── every 100 ms ──▶ ProgressPacer.due() ──▶ held updates whose window closed

While saturated, a stream's ``task.progress-updated`` events are relayed at most once per
``interval`` per stream (2 s; doubled every second, up to 8 s, while the hub still reads
behind): updates arriving inside the window are held, the newest per task
replacing older ones, and released together (in stream order) when it closes. Any other event
of that stream first releases what is held, then goes out at once, so terminal events
(``completed``, ``failed``), content and system events are never delayed or coalesced, and
the per-stream order that the cursor relies on is kept. A task's terminal event drops its own
held update (the end supersedes it). New streams are refused with a 429
and ``Retry-After`` while saturated. Recovery needs both signals below half their threshold
for ``recover_seconds`` (hysteresis, so the state does not flap). The fan-out lag compares the
worker's clock (``occurred_at``) with this host's: keep clocks in sync (NTP), and its threshold
well above their skew.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from api.stream.delivery import Delivery
from progress.events import TERMINAL_TASK_TYPES

PROGRESS = "task.progress-updated"


@dataclass(frozen=True, slots=True)
class BackpressureSettings:
    """Thresholds; see ``SSE_BACKPRESSURE_*`` in api/settings.py."""

    lag_seconds: float
    queue_depth: int
    fanout_lag_seconds: float
    recover_seconds: float
    progress_interval: float
    enabled: bool = True
    #: While the hub still reads behind, the window doubles each second up to this.
    max_progress_interval: float = 8.0


@dataclass(slots=True)
class LoadMonitor:
    """Decides saturation from samples; pure (the clock is passed in)."""

    settings: BackpressureSettings
    saturated: bool = False
    lag: float = 0.0
    max_depth: int = 0
    fanout_lag: float = 0.0
    _calm_since: float | None = None
    _lags: list[float] = field(default_factory=list)
    transitions: int = 0

    def decide(self, now: float, lag: float, max_depth: int, fanout_lag: float = 0.0) -> bool:
        """Take one sample; return whether the instance counts as saturated now.

        ``fanout_lag``: the oldest event the hub received since the last sample (now minus its
        ``occurred_at``): when it grows, the hub reads behind what Redis already sent.
        """
        # The mean over the last second: one long pause (a full GC) is not saturation.
        self._lags = [*self._lags[-9:], lag]
        self.lag = sum(self._lags) / len(self._lags)
        self.max_depth = max_depth
        self.fanout_lag = fanout_lag
        s = self.settings
        if not s.enabled:
            return False
        hot = (
            self.lag >= s.lag_seconds
            or max_depth >= s.queue_depth
            or fanout_lag >= s.fanout_lag_seconds
        )
        calm = (
            self.lag < s.lag_seconds / 2
            and max_depth < s.queue_depth / 2
            and fanout_lag < s.fanout_lag_seconds / 2
        )
        if hot:
            self._calm_since = None
            if not self.saturated:
                self.saturated = True
                self.transitions += 1
        elif self.saturated and calm:
            if self._calm_since is None:
                self._calm_since = now
            elif now - self._calm_since >= s.recover_seconds:
                self.saturated = False
                self._calm_since = None
                self.transitions += 1
        else:
            self._calm_since = None
        return self.saturated


@dataclass(slots=True)
class _Held:
    since: float
    by_task: dict[str | None, Delivery] = field(default_factory=dict)


class ProgressPacer:
    """Holds progress updates per stream while saturated; pure (clock injected)."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._held: dict[str, _Held] = {}
        self._last_sent: dict[str, float] = {}
        self.coalesced = 0

    def admit(self, delivery: Delivery, saturated: bool) -> list[Delivery]:
        """The deliveries to relay now, in stream order (possibly none, possibly several)."""
        stream = delivery.stream
        held = self._held.get(stream)
        if delivery.meta.type != PROGRESS:
            if held is None:
                return [delivery]
            if delivery.meta.type in TERMINAL_TASK_TYPES:
                # the task's end supersedes its held progress: coalesced away, not released
                if held.by_task.pop(delivery.meta.task_id, None) is not None:
                    self.coalesced += 1
            return [*self._release(stream), delivery]
        now = self._clock()
        if not saturated and held is None:
            return [delivery]
        last = self._last_sent.get(stream)
        if held is None and (last is None or now - last >= self.interval):
            self._last_sent[stream] = now
            return [delivery]
        if held is None:
            held = self._held[stream] = _Held(since=now)
        if delivery.meta.task_id in held.by_task:
            self.coalesced += 1
        held.by_task[delivery.meta.task_id] = delivery
        if not saturated:
            return self._release(stream)
        return []

    def due(self) -> list[Delivery]:
        """Held updates whose window closed, released in stream order."""
        now = self._clock()
        ready = [
            stream
            for stream, held in self._held.items()
            if now - self._last_sent.get(stream, held.since) >= self.interval
        ]
        released: list[Delivery] = []
        for stream in ready:
            released += self._release(stream)
        self._forget_idle(now)
        return released

    def _release(self, stream: str) -> list[Delivery]:
        held = self._held.pop(stream, None)
        if held is None:
            return []
        self._last_sent[stream] = self._clock()
        # Arrival order is stream order; dict order is first arrival per task, so sort by id.
        return sorted(held.by_task.values(), key=lambda d: _id_key(d.id))

    def _forget_idle(self, now: float) -> None:
        if len(self._last_sent) > 10_000:
            cutoff = now - self.interval
            self._last_sent = {s: t for s, t in self._last_sent.items() if t >= cutoff}

    @property
    def holding(self) -> int:
        """Updates held right now."""
        return sum(len(h.by_task) for h in self._held.values())


def _id_key(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


class Backpressure:
    """Runs the monitor and the pacer's clock on the event loop; the hub asks it what to relay."""

    def __init__(
        self,
        settings: BackpressureSettings,
        queue_depths: Callable[[], Iterable[int]],
        dispatch: Callable[[Delivery], None] | None = None,
        on_coalesced: Callable[[int], None] | None = None,
        on_lag: Callable[[float], None] | None = None,
    ) -> None:
        self.settings = settings
        self.monitor = LoadMonitor(settings)
        self.pacer = ProgressPacer(settings.progress_interval)
        self._queue_depths = queue_depths
        self.dispatch = dispatch
        self._on_coalesced = on_coalesced
        self._on_lag = on_lag
        self._task: asyncio.Task[None] | None = None
        self._oldest_routed = 0.0

    @property
    def saturated(self) -> bool:
        """True while the instance sheds load."""
        return self.monitor.saturated

    def next_interval(self, fanout_lag: float) -> float:
        """The pacer's window for the next second: the base one unless saturated; doubled
        (up to the maximum) while the hub still reads behind Redis."""
        s = self.settings
        if not self.monitor.saturated:
            return s.progress_interval
        if fanout_lag >= s.fanout_lag_seconds:
            return min(s.max_progress_interval, self.pacer.interval * 2)
        return self.pacer.interval

    def queue_depths(self) -> Iterable[int]:
        """Items waiting in each open stream's queue."""
        return self._queue_depths()

    def backpressure(self) -> tuple[bool, float]:
        """(saturated now, recent event-loop lag in seconds), for the metrics."""
        return self.monitor.saturated, self.monitor.lag

    def routed(self, occurred_at: float | None) -> None:
        """The hub received an event that occurred at ``occurred_at`` (epoch seconds)."""
        if occurred_at is not None:
            self._oldest_routed = max(self._oldest_routed, time.time() - occurred_at)

    def admit(self, delivery: Delivery) -> list[Delivery]:
        """What to relay now for an incoming live event."""
        before = self.pacer.coalesced
        released = self.pacer.admit(delivery, self.monitor.saturated)
        if self.pacer.coalesced != before and self._on_coalesced is not None:
            self._on_coalesced(self.pacer.coalesced - before)
        return released

    def start(self) -> None:
        """Start sampling and releasing."""
        self._task = asyncio.create_task(self._run(), name="backpressure")

    async def stop(self) -> None:
        """Stop the task."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self, period: float = 0.1, depth_every: int = 5) -> None:
        loop = asyncio.get_running_loop()
        depth, tick = 0, 0
        while True:
            # perf_counter, not loop.time(): uvloop's clock counts whole milliseconds.
            started = time.perf_counter()
            await asyncio.sleep(period)
            lag = max(0.0, time.perf_counter() - started - period)
            if self._on_lag is not None:
                self._on_lag(lag)
            tick += 1
            if tick % depth_every == 0:  # a walk over every stream: not every 100 ms
                depth = max(self._queue_depths(), default=0)
            fanout_lag, self._oldest_routed = self._oldest_routed, 0.0
            self.monitor.decide(loop.time(), lag, depth, fanout_lag)
            if tick % 10 == 0:
                self.pacer.interval = self.next_interval(fanout_lag)
            if self.dispatch is not None:
                for delivery in self.pacer.due():
                    self.dispatch(delivery)
