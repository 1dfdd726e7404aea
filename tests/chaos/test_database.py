"""Chaos: the database (PostgreSQL, its own cluster) stopped for 15 s mid-workflow, then
started again."""

from __future__ import annotations

import time

import pytest

from tests.chaos.conftest import Report
from tests.chaos.invariants import Counts
from tests.chaos.scenario import hold, start_novels, users, wait_writing
from tests.chaos.stack import (
    Stack,
    check_health_outage,
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
            down = wait_health(api.url, up=False, timeout=OUTAGE_SECONDS)
            hold(OUTAGE_SECONDS - (time.monotonic() - stopped))
            postgres.start()
            up = wait_health(api.url, up=True, timeout=15)
            check_health_outage(counts, api.url, "the database", down, up)
            stack.verify(counts, api.url, tabs, novels)
        finally:
            close_tabs(tabs)
            report(counts)
    assert not counts.failures, counts.line()
