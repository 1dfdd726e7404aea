"""Issue 2 (R3.4): failures carry a suggestion a writer can act on."""

from __future__ import annotations

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from progress.failures import (
    PERMANENT_SUGGESTION,
    TIMEOUT_SUGGESTION,
    TRANSIENT_SUGGESTION,
    advise,
    summarize_result,
)

pytestmark = pytest.mark.unit


class QuotaExceeded(Exception):
    retryable = False
    retry_suggestion = "Your monthly quota is used up; upgrade or wait until the 1st."


@pytest.mark.parametrize(
    ("exc", "retryable", "suggestion"),
    [
        (SoftTimeLimitExceeded(), True, TIMEOUT_SUGGESTION),
        (ConnectionResetError("reset"), True, TRANSIENT_SUGGESTION),
        (ValueError("bad"), False, PERMANENT_SUGGESTION),
        (QuotaExceeded("quota"), False, QuotaExceeded.retry_suggestion),
    ],
)
def test_advice(exc: Exception, retryable: bool, suggestion: str) -> None:
    advice = advise(exc)
    assert advice.error_type == type(exc).__name__
    assert advice.retryable is retryable
    assert advice.suggestion == suggestion
    assert advice.message


def test_summaries() -> None:
    assert summarize_result({"summary": "3 chapters"}) == "3 chapters"
    assert summarize_result("x" * 500) == "x" * 200
    assert summarize_result(42) is None
