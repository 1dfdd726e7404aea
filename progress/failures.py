"""What a writer can do about a failure: whether retrying helps, and what to tell them; pure."""

from __future__ import annotations

from dataclasses import dataclass

_TIMEOUT_NAMES = frozenset({"SoftTimeLimitExceeded", "TimeLimitExceeded", "TimeoutError"})

TIMEOUT_SUGGESTION = (
    "The task took longer than allowed. Try again; a shorter target length finishes sooner."
)
TRANSIENT_SUGGESTION = "A service was briefly unavailable. Try again in a minute."
PERMANENT_SUGGESTION = (
    "Something went wrong on our side. Try again; if it fails again, contact support "
    "and quote the task id."
)


@dataclass(frozen=True, slots=True)
class FailureAdvice:
    """How a failure is shown to the writer."""

    error_type: str
    message: str
    retryable: bool
    suggestion: str


def advise(exc: BaseException) -> FailureAdvice:
    """Classify ``exc``; an exception may set ``retryable`` and ``retry_suggestion`` itself."""
    name = type(exc).__name__
    message = (str(exc) or name)[:500]
    retryable = getattr(exc, "retryable", None)
    suggestion = getattr(exc, "retry_suggestion", None)
    if name in _TIMEOUT_NAMES:
        default_retryable, default_suggestion = True, TIMEOUT_SUGGESTION
    elif isinstance(exc, ConnectionError | TimeoutError):
        default_retryable, default_suggestion = True, TRANSIENT_SUGGESTION
    else:
        default_retryable, default_suggestion = False, PERMANENT_SUGGESTION
    return FailureAdvice(
        error_type=name,
        message=message,
        retryable=default_retryable if retryable is None else bool(retryable),
        suggestion=suggestion if isinstance(suggestion, str) else default_suggestion,
    )


def summarize_result(result: object, limit: int = 200) -> str | None:
    """A short text for ``completed``: a result's ``summary`` entry, or a short string result."""
    if isinstance(result, dict) and isinstance(result.get("summary"), str):
        return str(result["summary"])[:limit]
    if isinstance(result, str):
        return result[:limit]
    return None
