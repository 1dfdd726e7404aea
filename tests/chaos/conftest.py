"""The chaos suite's report: each scenario records its counts; the session ends with a table."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.chaos.invariants import Counts

ROWS = pytest.StashKey[list[Counts]]()

Report = Callable[[Counts], None]


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Report:
    """``report(counts)``: print the scenario's line now and keep it for the summary table."""
    rows = request.config.stash.setdefault(ROWS, [])

    def record(counts: Counts) -> None:
        rows.append(counts)
        print(f"\n{counts.line()}")  # noqa: T201  (the counts are the suite's output)

    return record


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """One row per scenario that ran, and why each failing one failed."""
    rows = config.stash.get(ROWS, [])
    if not rows:
        return
    terminalreporter.section("chaos scenarios")
    header = ("scenario", "result", "attempts", "events", "lost", "duplicated", "leaked", "stuck")
    table = [header] + [
        (
            row.scenario,
            "FAIL" if row.failures else "pass",
            *(str(n) for n in (row.attempts, row.events, row.lost, row.duplicated, row.leaked)),
            str(row.stuck),
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        terminalreporter.write_line(
            "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))
        )
    for row in rows:
        for failure in row.failures:
            terminalreporter.write_line(f"{row.scenario}: {failure}")
