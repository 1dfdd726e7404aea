"""Chaos: the users' connections dropped again and again, or slowed, by a loopback fault
proxy between them and the API."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.conftest import Report
from tests.chaos.fault_proxy import FaultProxy
from tests.chaos.invariants import Counts
from tests.chaos.scenario import hold, start_novels, users, wait_writing
from tests.chaos.stack import Stack, sqlite_url
from tests.chaos.users import close_tabs, open_tabs

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]

DROPS = 6
DROP_EVERY_SECONDS = 1.5
LATENCY_SECONDS = 0.3
BYTES_PER_SECOND = 6000


def test_connections_dropped_repeatedly(tmp_path: Path, report: Report) -> None:
    counts = Counts("connection-drops")
    with Stack(sqlite_url(tmp_path)) as stack, FaultProxy(stack.api().port) as proxy:
        stack.worker()
        tabs = open_tabs([proxy.url], users("connection-drops"))
        try:
            novels = start_novels(proxy.url, tabs)
            wait_writing(stack.apis[0].url, tabs, novels)
            for _ in range(DROPS):
                proxy.drop_all()
                hold(DROP_EVERY_SECONDS)
            counts.notes.append(f"{proxy.dropped} connections dropped")
            stack.verify(counts, stack.apis[0].url, tabs, novels)
        finally:
            close_tabs(tabs)
            report(counts)
    assert not counts.failures, counts.line()


def test_connections_slowed(tmp_path: Path, report: Report) -> None:
    counts = Counts("connection-slow")
    with Stack(sqlite_url(tmp_path)) as stack, FaultProxy(stack.api().port) as proxy:
        api = stack.apis[0]
        stack.worker()
        proxy.slow(LATENCY_SECONDS, BYTES_PER_SECOND)
        tabs = open_tabs([proxy.url], users("connection-slow"))
        try:
            novels = start_novels(api.url, tabs)
            counts.notes.append(
                f"{LATENCY_SECONDS * 1000:.0f} ms latency, {BYTES_PER_SECOND} B/s shared"
            )
            stack.verify(counts, api.url, tabs, novels)
        finally:
            close_tabs(tabs)
            report(counts)
    assert not counts.failures, counts.line()
