"""Issue 19 (4): which failures count towards an outage of a dependency."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import exc

from workers import outages
from workers.llm_errors import PermanentLLMError, TransientLLMError
from workers.outages import DATABASE, LLM, NOTICES, dependency_of


@pytest.mark.parametrize(
    ("error", "dependency"),
    [
        (TransientLLMError("refused"), LLM),
        (TransientLLMError("bad gateway", status_code=502), LLM),
        (TransientLLMError("slow down", status_code=429), None),
        (PermanentLLMError("bad key", status_code=401), None),
        (exc.OperationalError("SELECT 1", {}, Exception("refused")), DATABASE),
        (exc.TimeoutError("pool exhausted"), None),  # load on this process, not an outage
        (ValueError("a bug"), None),
    ],
    ids=["unreachable", "5xx", "429", "4xx", "db-refused", "db-pool-exhausted", "other"],
)
def test_only_an_unreachable_or_failing_dependency_counts(
    error: BaseException, dependency: str | None
) -> None:
    assert dependency_of(error) == dependency


def test_every_dependency_has_a_notice_with_a_suggested_action() -> None:
    assert set(NOTICES) == {LLM, DATABASE}
    assert all(n.action and n.recovered_action and n.scope for n in NOTICES.values())


class _Detector:
    """Answers as the script does while an outage waits for its recovery period."""

    recovery_ms = 100

    def __init__(self) -> None:
        self.calls: list[str] = []

    def recovered(self, dependency: str) -> list[str]:
        self.calls.append(f"ok {dependency}")
        return []

    def settled(self, dependency: str) -> list[str]:
        self.calls.append(f"check {dependency}")
        return []


def test_a_success_inside_the_recovery_period_is_checked_again_once_it_passed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Without this check the recovery notice waited for some later task's success, which may
    # never come (every novel done), and the writers were never told the LLM is back.
    detector = _Detector()
    monkeypatch.setattr(outages, "_detector", lambda: detector)
    outages.report_recovery(detector, LLM)  # type: ignore[arg-type]
    outages.report_recovery(detector, LLM)  # type: ignore[arg-type]
    deadline = time.monotonic() + 5
    while f"check {LLM}" not in detector.calls:
        assert time.monotonic() < deadline, detector.calls
        time.sleep(0.01)
    time.sleep(0.3)  # a second timer would have fired by now
    assert detector.calls == [f"ok {LLM}", f"ok {LLM}", f"check {LLM}"]
