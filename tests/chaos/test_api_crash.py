"""Chaos: one of two API instances SIGKILLed while every user streams from it in two tabs; the
tabs move to the survivor and resume."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import pytest

from tests.chaos.conftest import Report
from tests.chaos.invariants import Counts
from tests.chaos.scenario import start_novels, users, wait_writing
from tests.chaos.stack import Stack, healthy, sqlite_url
from tests.chaos.users import close_tabs, open_tabs, wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]

#: A browser retries after its ``retry:`` (3 s) or a 429's Retry-After (5-20 s): within this,
#: every tab must stream again from the survivor.
FAILOVER_SECONDS = 25.0


def test_an_api_instance_killed_while_users_stream(tmp_path: Path, report: Report) -> None:
    counts = Counts("api-kill")
    with Stack(sqlite_url(tmp_path)) as stack:
        victim, survivor = stack.api(), stack.api()
        stack.worker()
        tabs = open_tabs([victim.url, survivor.url], users("api-kill"), per_user=2)
        try:
            novels = start_novels(survivor.url, tabs)
            wait_writing(survivor.url, tabs, novels)
            victim.stop(signal.SIGKILL)
            moved = wait_until(lambda: all(tab.wait_open(0) for tab in tabs), FAILOVER_SECONDS)
            if not moved:
                locked = sum(not tab.wait_open(0) for tab in tabs)
                refusals = dict(sum((tab.refusals for tab in tabs), Counter()))
                counts.fail(
                    f"{locked} of {len(tabs)} tabs not streaming {FAILOVER_SECONDS:.0f} s after "
                    f"the crash (refusals: {refusals})"
                )
            if not healthy(survivor.url):
                counts.fail("the survivor's health does not say all is well")
            stack.verify(counts, survivor.url, tabs, novels)
        finally:
            close_tabs(tabs)
            report(counts)
    assert not counts.failures, counts.line()
