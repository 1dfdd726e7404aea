"""Errors raised by the ``progress`` library.

ProgressError
├── InvalidEvent        event data failed validation (names each bad field)
├── NotInTask           progress.update() called outside a reporting task
├── InvalidCursor       a resume cursor could not be parsed
└── StoreUnavailable    the event store (Redis) could not be reached; ``retryable``
    └── PartlyStored    a batch's events were stored, what follows them was not: ``pending``
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pydantic import ValidationError

    from progress.events import EventEnvelope
    from progress.store import StoredEvent

_EVENT_TAG = re.compile(r"^[a-z]+\.[a-z-]+$")


class ProgressError(Exception):
    """Base of every error this library raises."""

    retryable: bool = False


class InvalidEvent(ProgressError, ValueError):
    """Event data failed validation; ``errors`` maps each bad field to its problem."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        detail = "; ".join(f"{field}: {problem}" for field, problem in errors.items())
        super().__init__(f"invalid event: {detail}")

    @classmethod
    def from_validation_error(cls, exc: ValidationError) -> InvalidEvent:
        """Build from pydantic's error, keeping the dotted field path of every problem."""
        errors: dict[str, str] = {}
        for error in exc.errors(include_url=False):
            loc = [str(part) for part in error["loc"]]
            if loc and _EVENT_TAG.match(loc[0]):
                loc = loc[1:]  # drop the discriminator tag pydantic puts first
            field = ".".join(loc) or ("type" if "tag" in error["type"] else "event")
            errors[field] = error["msg"]
        return cls(errors)


class NotInTask(ProgressError, RuntimeError):
    """progress.update() was called outside a task decorated with report_progress."""


class Cancelled(ProgressError):
    """Raise inside a reporting task to stop it; it is reported as cancelled, not failed."""

    def __init__(self, reason: str = "cancelled by the user", by: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        #: The user who asked for the stop, when known.
        self.by = by


class InvalidCursor(ProgressError, ValueError):
    """A resume cursor (Last-Event-ID) is malformed."""


class StoreUnavailable(ProgressError, ConnectionError):
    """The event store could not be reached."""

    retryable = True


class PartlyStored(StoreUnavailable):
    """A batch's events were stored, but what must follow them (their workflow counting) was
    not: send ``pending`` (internal markers) again, never the events; ``stored`` is where the
    events went."""

    def __init__(
        self,
        pending: list[tuple[EventEnvelope, Sequence[str]]],
        stored: list[StoredEvent],
    ) -> None:
        super().__init__(f"{len(pending)} items stored only in part")
        self.pending = pending
        self.stored = stored
