"""Chaos: the worker running every user's workflow SIGKILLed mid-task; another worker (with the
watchdog) takes over."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.chaos.conftest import Report
from tests.chaos.invariants import Counts, verify
from tests.chaos.scenario import start_novels, users, wait_writing
from tests.chaos.stack import WATCHDOG_WINDOW, Stack, health, sqlite_url
from tests.chaos.users import close_tabs, open_tabs

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]


def test_a_worker_killed_mid_task(tmp_path: Path, report: Report) -> None:
    counts = Counts("worker-kill")
    with Stack(sqlite_url(tmp_path)) as stack:
        api = stack.api()
        victim = stack.worker(beat=False)
        tabs = open_tabs([api.url], users("worker-kill"))
        try:
            novels = start_novels(api.url, tabs)
            wait_writing(api.url, tabs, novels)
            victim.stop(signal.SIGKILL)
            stack.worker(beat=True)
            if health(api.url) != 200:
                counts.fail("health is not 200 with Redis and the database up")
            verify(
                counts,
                api.url,
                tabs,
                novels,
                WATCHDOG_WINDOW + 10,
                stack.database_url,
                stack.redis_url,
            )
        finally:
            close_tabs(tabs)
            report(counts)
    assert not counts.failures, counts.line()
