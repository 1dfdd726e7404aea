"""Issue 19 (4): which failures count towards an outage of a dependency."""

from __future__ import annotations

import pytest
from sqlalchemy import exc

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
