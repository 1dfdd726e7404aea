"""Who a task acts for: carried in a context variable and in Celery message headers.

``acting_as`` sets it for code that publishes tasks; ``before_task_publish`` copies it into the
message's ``progress_identity`` header and ``task_prerun`` restores it in the worker, so tasks
published from inside a task (chains, groups, chords) inherit it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, fields
from typing import Any

from pydantic import TypeAdapter, ValidationError

from progress.events import Identifier

HEADER = "progress_identity"

_identifier: TypeAdapter[str] = TypeAdapter(Identifier)


@dataclass(frozen=True, slots=True)
class Identity:
    """The user (and optionally session and resources) a task's events belong to."""

    user_id: str
    session_id: str | None = None
    novel_id: str | None = None
    workflow_id: str | None = None

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None:
                _identifier.validate_python(value)

    def to_header(self) -> dict[str, str]:
        """The header value: only the fields that are set."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_header(cls, value: Any) -> Identity | None:
        """Parse a header value; None when absent or malformed (never raise into Celery)."""
        if not isinstance(value, Mapping) or "user_id" not in value:
            return None
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in value.items() if k in known})
        except (TypeError, ValidationError):
            return None


current_identity: ContextVar[Identity | None] = ContextVar("progress_identity", default=None)


@contextmanager
def acting_as(
    user_id: str,
    session_id: str | None = None,
    *,
    novel_id: str | None = None,
    workflow_id: str | None = None,
) -> Iterator[Identity]:
    """Tasks published inside this block act for ``user_id`` (and their children too)."""
    identity = Identity(user_id, session_id, novel_id, workflow_id)
    token = current_identity.set(identity)
    try:
        yield identity
    finally:
        current_identity.reset(token)
