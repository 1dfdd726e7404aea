"""Chaos: the worker running every user's workflow SIGKILLed mid-task; another worker (with the
watchdog) takes over."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.chaos.conftest import Report
from tests.chaos.invariants import Counts, novel_status
from tests.chaos.scenario import WRITING, hold, start_novels, users, wait_writing
from tests.chaos.stack import WATCHDOG_WINDOW, Stack, healthy, sqlite_url
from tests.chaos.users import Tab, close_tabs, open_tabs, wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]

REDELIVER_AFTER = 12
REDELIVERY = {"WORKER_VISIBILITY_TIMEOUT_SECONDS": str(REDELIVER_AFTER)}


def still_writing(base: str, tabs: list[Tab], novels: dict[str, str]) -> list[str]:
    """Statuses of the novels still being written after a few seconds' grace."""
    jwts = {tab.user: tab.jwt for tab in tabs}

    def statuses() -> list[str]:
        found = [novel_status(base, jwts[owner], novel) for novel, owner in novels.items()]
        return [status for status in found if status in WRITING]

    wait_until(lambda: not statuses(), 5, every=0.5)
    return statuses()


def test_a_worker_killed_mid_task(tmp_path: Path, report: Report) -> None:
    counts = Counts("worker-kill")
    with Stack(sqlite_url(tmp_path)) as stack:
        api = stack.api()
        victim = stack.worker(beat=False, **REDELIVERY)
        tabs = open_tabs([api.url], users("worker-kill"))
        try:
            novels = start_novels(api.url, tabs)
            wait_writing(api.url, tabs, novels)
            killed = time.monotonic()
            victim.stop(signal.SIGKILL)
            stack.worker(beat=True, **REDELIVERY)
            failed = wait_until(
                lambda: all(tab.of_type("task.progress-failed") for tab in tabs), WATCHDOG_WINDOW
            )
            if not failed:
                counts.fail(f"no task shown failed {WATCHDOG_WINDOW:.0f} s after the crash")
            left = still_writing(api.url, tabs, novels)
            if left:
                counts.fail(f"{len(left)} novels still {left} after the watchdog failed their task")
            # A worker starting after the visibility timeout restores the unacknowledged tasks:
            # redelivered after the watchdog's verdict, they must not report completed as if the
            # user had not been told they failed.
            hold(REDELIVER_AFTER + 1 - (time.monotonic() - killed))
            stack.worker(beat=False, **REDELIVERY)
            if not healthy(api.url):
                counts.fail("health does not say all is well with Redis and the database up")
            stack.verify(counts, api.url, tabs, novels)
            counts.stuck_novels = max(counts.stuck_novels, len(left))
        finally:
            close_tabs(tabs)
            report(counts)
    assert not counts.failures, counts.line()
