"""Chaos: the database (PostgreSQL, its own cluster) stopped for 15 s mid-workflow, then
started again."""

from __future__ import annotations

import time

import pytest

from tests.chaos.conftest import Report
from tests.chaos.invariants import Counts, verify
from tests.chaos.scenario import hold, start_novels, users, wait_writing
from tests.chaos.stack import (
    HEALTH_PROBE_SECONDS,
    WATCHDOG_WINDOW,
    Stack,
    health_answer_seconds,
    wait_health,
)
from tests.chaos.users import close_tabs, open_tabs
from tests.postgres_server import PostgresServer

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]

OUTAGE_SECONDS = 15.0


def test_the_database_stopped_and_restarted(report: Report) -> None:
    counts = Counts("database-stop")
    with PostgresServer(database="chaos") as postgres, Stack(postgres.url) as stack:
        api = stack.api()
        stack.worker()
        tabs = open_tabs([api.url], users("database-stop"))
        try:
            novels = start_novels(api.url, tabs)
            wait_writing(api.url, tabs, novels)
            stopped = time.monotonic()
            postgres.stop()
            down_after = wait_health(api.url, healthy=False, timeout=OUTAGE_SECONDS)
            hold(OUTAGE_SECONDS - (time.monotonic() - stopped))
            postgres.start()
            up_after = wait_health(api.url, healthy=True, timeout=15)
            counts.notes.append(f"health down after {down_after and round(down_after, 1)} s")
            answer = health_answer_seconds(api.url)
            if answer > HEALTH_PROBE_SECONDS:
                counts.fail(f"health took {answer:.1f} s to answer while the database was down")
            if down_after is None:
                counts.fail(f"health said up for all {OUTAGE_SECONDS:.0f} s of the database outage")
            if up_after is None:
                counts.fail("health still down 15 s after the database came back")
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
