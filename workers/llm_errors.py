"""Failures of a text generator that a writer can act on.

``progress.failures.advise`` reads ``retryable`` and ``retry_suggestion`` from the exception, so
the writer sees whether trying again helps and what to check. Both are class attributes with
sensible defaults; one instance may carry a more precise suggestion (e.g. "check the API key").
"""

from __future__ import annotations


class LLMError(Exception):
    """The text generator failed."""

    retryable: bool = False
    retry_suggestion: str = (
        "The text generator failed. Try again; if it fails again, contact support "
        "and quote the task id."
    )

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        retry_suggestion: str | None = None,
    ) -> None:
        super().__init__(message)
        #: HTTP status of the provider's answer, if there was one.
        self.status_code = status_code
        if retry_suggestion is not None:
            self.retry_suggestion = retry_suggestion

    def __reduce__(self) -> tuple[object, ...]:
        # Keep the status and the suggestion when Celery pickles the exception.
        kwargs = {"status_code": self.status_code, "retry_suggestion": self.retry_suggestion}
        return (_rebuild, (type(self), str(self), kwargs))


def _rebuild(cls: type[LLMError], message: str, kwargs: dict[str, object]) -> LLMError:
    return cls(message, **kwargs)  # type: ignore[arg-type]


class TransientLLMError(LLMError):
    """Connection refused or reset, timeout, HTTP 429 or 5xx: trying again later may work."""

    retryable = True
    retry_suggestion = "The text generator is briefly unavailable or busy. Try again in a minute."


class PermanentLLMError(LLMError):
    """The provider rejected the request (HTTP 4xx): trying again unchanged will fail again."""

    retryable = False
    retry_suggestion = (
        "The text generator rejected the request. Check the generator settings "
        "(LLM_BASE_URL, LLM_API_KEY, LLM_MODEL)."
    )
