"""Chaos: Redis (events, broker and results) SIGKILLed mid-workflow, then restarted with its
data (AOF) or empty."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.conftest import Report
from tests.chaos.invariants import Counts
from tests.chaos.scenario import hold, start_novels, users, wait_writing
from tests.chaos.stack import (
    Stack,
    check_health_outage,
    sqlite_url,
    wait_health,
)
from tests.chaos.users import close_tabs, open_tabs

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]

OUTAGE_SECONDS = 6.0


def note_worker_restarts(stack: Stack, counts: Counts) -> None:
    """Note the workers that ended during the outage (restarted by the stack's supervisor)."""
    if stack.worker_restarts:
        counts.notes.append(f"{stack.worker_restarts} worker restarted by its supervisor")


def redis_outage(tmp_path: Path, report: Report, name: str, keep_data: bool) -> Counts:
    counts = Counts(name)
    with Stack(sqlite_url(tmp_path)) as stack:
        api = stack.api()
        stack.worker()
        tabs = open_tabs([api.url], users(name))
        try:
            novels = start_novels(api.url, tabs)
            wait_writing(api.url, tabs, novels)
            stack.redis.kill()
            down = wait_health(api.url, up=False, timeout=OUTAGE_SECONDS)
            hold(OUTAGE_SECONDS - (down.after if down else OUTAGE_SECONDS))
            if not keep_data:
                stack.redis.wipe()
            stack.redis.start()
            up = wait_health(api.url, up=True, timeout=15)
            check_health_outage(counts, api.url, "Redis", down, up)
            stack.verify(counts, api.url, tabs, novels, reset_ok=not keep_data)
            note_worker_restarts(stack, counts)
        finally:
            close_tabs(tabs)
            report(counts)
    return counts


def test_redis_killed_and_restarted_with_its_data(tmp_path: Path, report: Report) -> None:
    counts = redis_outage(tmp_path, report, "redis-kill-keep-data", keep_data=True)
    assert not counts.failures, counts.line()


def test_redis_killed_and_restarted_without_data(tmp_path: Path, report: Report) -> None:
    counts = redis_outage(tmp_path, report, "redis-kill-lose-data", keep_data=False)
    assert not counts.failures, counts.line()
