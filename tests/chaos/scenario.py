"""Steps the scenarios share: users, their novels, waiting for work to be in flight."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from tests.chaos.invariants import novel_status
from tests.chaos.users import Tab, start_novel, wait_until

#: Users per scenario (several: an event on the wrong user's connection is a leak).
USERS = 3
#: Statuses of a novel whose workflow is running (tasks in flight on a worker).
WRITING = frozenset({"outlining", "drafting", "reviewing"})


def users(scenario: str, count: int = USERS) -> list[str]:
    """Fresh user ids for one scenario."""
    run = uuid.uuid4().hex[:8]
    return [f"{scenario}-{run}-{n}" for n in range(count)]


def start_novels(base: str, tabs: list[Tab]) -> dict[str, str]:
    """One two-chapter novel per user, through ``POST /api/v1/novels``: novel id -> owner."""
    owners = {tab.user: tab.jwt for tab in tabs}
    return {start_novel(base, jwt, f"Tide of {user}")[0]: user for user, jwt in owners.items()}


def wait_writing(
    base: str, tabs: list[Tab], novels: dict[str, str], statuses: frozenset[str] = WRITING
) -> None:
    """Wait until every novel is being written (its tasks run on a worker right now)."""
    jwts = {tab.user: tab.jwt for tab in tabs}

    def writing() -> bool:
        return all(novel_status(base, jwts[owner], n) in statuses for n, owner in novels.items())

    assert wait_until(writing, 60, every=0.2), "the novels never started"


def hold(seconds: float, check: Callable[[], object] | None = None) -> None:
    """Keep a fault in place for ``seconds`` (the scenario's outage length), running ``check``
    every half second meanwhile."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check is not None:
            check()
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
