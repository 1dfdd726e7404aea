"""Automatic ``system.error`` when a dependency the tasks need is down for many tasks at once.

    task fails on the LLM (unreachable, 5xx) or the database (unreachable)
        └─▶ task_retry / task_failure receiver ─▶ OutageDetector.failed(dependency, task, user)
              (one Lua call, workers/lua/outage.lua: distinct failing tasks in the window;
               at the threshold the outage opens)  ─▶ system.error to each user it returns
    the LLM answers again (first token of a stream) / a task that uses the database succeeds
        └─▶ OutageDetector.recovered(dependency) ─▶ system.notification to each user told,
              once the outage is settled: that success came after the last failure and no
              failure for ``recovery_seconds``; until then the outage stays open, and a check
              once that period has passed (a timer of the process that saw the success), or
              any later task success (OutageDetector.settled), ends it

The state lives in Redis (``rt:{dep:<dependency>}:*``, docs/redis.md), and the script is
atomic, so however many worker processes see the failures, each affected writer gets ONE
``system.error`` per outage and ONE recovery notice; writers none of whose tasks failed get
nothing. Individual task failures still reach their writers as ``task.progress-*`` events.

Why a quiet period, not the first success: with a provider failing half the time, the first
success would end the outage and the next failures open a new one, and writers would get
error / recovery / error / recovery. Alerting does the same (Prometheus' ``keep_firing_for``,
Sentry's resolve after a quiet period): it resolves once the failures stopped for a while, not
at the first good sample. Counting N successes in a row would not do: under concurrency a
provider failing half the time still yields runs of successes, so the notices would flap
anyway, only less often.

A database pool timeout (SQLAlchemy's ``TimeoutError``: every connection is taken) is load on
this process, not the database down, and does not count.

Receivers never raise into Celery: a failing detector (Redis down) is logged and counted.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import redis
from celery import signals
from sqlalchemy import exc as sa_exc

import progress
from progress.errors import StoreUnavailable
from progress.events import EventEnvelope, SystemError, SystemNotification
from progress.identity import current_identity
from progress.keys import KeyLayout
from progress.redis_pipeline import lua_source
from progress.runtime import get_reporter
from workers.db import DATABASE_UNAVAILABLE
from workers.llm import LLMClient
from workers.llm_errors import TransientLLMError

log = logging.getLogger("workers.outages")

LLM = "llm"
DATABASE = "database"

OUTAGE_LUA = lua_source("workers", "outage.lua")
#: An outage nobody saw end is forgotten after this long (a later failure opens a new one).
_STATE_TTL_MS = 24 * 3600 * 1000

#: Counts of this process, read by the metrics exporter: (dependency, what) -> n, ``what`` in
#: ``failures``, ``outages``, ``errors_sent``, ``recoveries_sent``, ``detector_errors``.
counts: Counter[tuple[str, str]] = Counter()


@dataclass(frozen=True)
class Notice:
    """What a writer is told when a dependency goes down, and when it is back."""

    scope: str
    error: str
    action: str
    recovered: str
    recovered_action: str


NOTICES = {
    LLM: Notice(
        scope="text generation (outlines, chapters, revisions)",
        error="The text generator is not answering, so chapters cannot be written right now.",
        action="Nothing to do: your tasks retry on their own. We will tell you when it works "
        "again; then retry any task that failed meanwhile.",
        recovered="The text generator answers again; writing goes on.",
        recovered_action="Retry any task that failed during the outage.",
    ),
    DATABASE: Notice(
        scope="saving novels and chapters",
        error="Our database is unreachable, so novels and chapters cannot be saved right now.",
        action="Avoid starting new novels for now. We will tell you when it works again; "
        "then retry any task that failed meanwhile.",
        recovered="The database is reachable again; saving works.",
        recovered_action="Retry any task that failed during the outage.",
    ),
}


def dependency_of(exc: BaseException) -> str | None:
    """The dependency whose outage ``exc`` shows (None for any other failure): the LLM
    unreachable or answering 5xx (not 429, not 4xx), or the database unreachable (not this
    process's pool exhausted)."""
    if isinstance(exc, TransientLLMError):
        status = exc.status_code
        return LLM if status is None or status >= 500 else None
    if isinstance(exc, sa_exc.TimeoutError):
        return None
    return DATABASE if isinstance(exc, DATABASE_UNAVAILABLE) else None


class OutageDetector:
    """The shared detector (one Lua script over ``rt:{dep:<dependency>}:*``)."""

    def __init__(
        self,
        client: redis.Redis | redis.RedisCluster,
        layout: KeyLayout,
        threshold: int,
        window_seconds: float,
        recovery_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._script = client.register_script(OUTAGE_LUA)
        self.layout = layout
        self.threshold = threshold
        self.window_ms = int(window_seconds * 1000)
        self.recovery_ms = int(recovery_seconds * 1000)
        self._clock = clock

    def _now(self) -> int:
        return int(self._clock() * 1000)

    def _keys(self, dependency: str) -> list[str]:
        return [
            self.layout.outage(dependency),
            self.layout.dependency_failures(dependency),
            self.layout.dependency_failing_users(dependency),
            self.layout.outage_notified(dependency),
        ]

    def failed(self, dependency: str, task_id: str, user_id: str | None) -> tuple[bool, list[str]]:
        """Record a task's failure; (whether the outage opened now, users to tell now)."""
        now = self._now()
        args: list[str | int] = [
            "fail",
            now,
            self.window_ms,
            self.threshold,
            task_id,
            user_id or "",
            _STATE_TTL_MS,
            self.recovery_ms,
        ]
        result = self._script(keys=self._keys(dependency), args=args)
        return bool(result[0]), [_text(user) for user in result[1:]]

    def recovered(self, dependency: str) -> list[str]:
        """The dependency worked: end its outage if it is settled (no failure for the
        recovery period); the users to tell (once), or none while it is not."""
        return self._settle("ok", dependency)

    def settled(self, dependency: str) -> list[str]:
        """No news of ``dependency``: end its outage if a success since its last failure
        and the recovery period since have settled it; the users to tell (once)."""
        return self._settle("check", dependency)

    def _settle(self, what: str, dependency: str) -> list[str]:
        args: list[str | int] = [what, self._now(), 0, 0, "", "", 0, self.recovery_ms]
        result = self._script(keys=self._keys(dependency), args=args)
        return [_text(user) for user in result]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _send(event: EventEnvelope) -> None:
    try:
        progress.publish(event)
    except StoreUnavailable:
        get_reporter().submit(event, [])


def report_failure(detector: OutageDetector, dependency: str, task_id: str) -> None:
    """A task failed on ``dependency``: record it and send the ``system.error`` notices due."""
    counts[dependency, "failures"] += 1
    identity = current_identity.get()
    opened, users = detector.failed(dependency, task_id, identity.user_id if identity else None)
    if opened:
        counts[dependency, "outages"] += 1
        log.error("%s outage: %d tasks failed within the window", dependency, detector.threshold)
    notice = NOTICES[dependency]
    for user in users:
        _send(
            SystemError(
                user_id=user,
                severity="high",
                message=notice.error,
                affected_scope=notice.scope,
                suggested_action=notice.action,
            )
        )
        counts[dependency, "errors_sent"] += 1


def report_recovery(detector: OutageDetector, dependency: str) -> None:
    """``dependency`` worked: if its outage is over, send each user told of it one notice;
    if not yet (the success came within the recovery period), look again once the period
    has passed, so the notice does not wait for some later task's success."""
    users = detector.recovered(dependency)
    if users:
        _tell_recovered(dependency, users)
    else:
        _check_later(dependency, detector.recovery_ms / 1000)


#: The settle check each dependency has pending in this process (at most one).
_pending_checks: dict[str, threading.Timer] = {}
_pending_lock = threading.Lock()


def _check_later(dependency: str, delay: float) -> None:
    # With no outage open the check costs one Lua call that finds nothing: at most one per
    # recovery period per process.
    with _pending_lock:
        if dependency in _pending_checks:
            return
        timer = threading.Timer(delay + 0.05, _check_now, (dependency,))
        timer.daemon = True
        _pending_checks[dependency] = timer
    timer.start()


def _check_now(dependency: str) -> None:
    with _pending_lock:
        _pending_checks.pop(dependency, None)
    _guarded("settling", dependency, report_settled)


def report_settled(detector: OutageDetector, dependency: str) -> None:
    """No news of ``dependency``: if an earlier success settled its outage, tell the users."""
    _tell_recovered(dependency, detector.settled(dependency))


def _tell_recovered(dependency: str, users: list[str]) -> None:
    if users:
        log.warning("%s recovered; telling %d users", dependency, len(users))
    notice = NOTICES[dependency]
    for user in users:
        _send(
            SystemNotification(
                user_id=user,
                level="info",
                message=notice.recovered,
                suggested_action=notice.recovered_action,
            )
        )
        counts[dependency, "recoveries_sent"] += 1


def _detector() -> OutageDetector:
    from workers import resources

    return resources.outage_detector()


def _guarded(what: str, dependency: str, call: Any, *args: Any) -> None:
    try:
        call(_detector(), dependency, *args)
    except Exception:  # an observer never breaks the task
        counts[dependency, "detector_errors"] += 1
        log.exception("outage detector: %s of %s failed", what, dependency)


def _on_failure(exc: BaseException | None, task_id: str | None) -> None:
    dependency = dependency_of(exc) if exc is not None else None
    if dependency is not None:
        _guarded("failure", dependency, report_failure, task_id or uuid.uuid4().hex)


def _task_retry(request: Any = None, reason: Any = None, **_: Any) -> None:
    if isinstance(reason, BaseException):
        _on_failure(reason, getattr(request, "id", None))


def _task_failure(task_id: str | None = None, exception: Any = None, **_: Any) -> None:
    if isinstance(exception, BaseException):
        _on_failure(exception, task_id)


def _task_success(sender: Any = None, **_: Any) -> None:
    # Every task of this app reads the database (the beat's watchdog too), so its success
    # shows the database works; for the LLM it is only the clock that may settle an outage
    # whose last success came within the recovery period.
    if str(getattr(sender, "name", "")).startswith("workers."):
        _guarded("recovery", DATABASE, report_recovery)
        _guarded("settling", LLM, report_settled)


def connect_outage_signals() -> None:
    """Connect the receivers (idempotent)."""
    signals.task_retry.connect(_task_retry, weak=False, dispatch_uid="workers.outages.retry")
    signals.task_failure.connect(_task_failure, weak=False, dispatch_uid="workers.outages.failure")
    signals.task_success.connect(_task_success, weak=False, dispatch_uid="workers.outages.success")


class WatchedLLM:
    """An LLM client whose first token of a stream tells the detector the LLM works."""

    def __init__(self, inner: LLMClient) -> None:
        self.inner = inner

    def stream(self, prompt: str, max_tokens: int) -> Iterator[str]:
        """The inner client's tokens; the first one ends an LLM outage, if any."""
        first = True
        for token in self.inner.stream(prompt, max_tokens):
            if first:
                first = False
                _guarded("recovery", LLM, report_recovery)
            yield token
