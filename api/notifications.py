"""System notifications and errors from operators: to everyone, to some users, or to a session.

Built as ``system.notification`` / ``system.error`` events and stored like any other event,
so they are in history and resumable. They are never coalesced (only
``task.progress-updated`` is) and never held by backpressure (the pacer holds only progress
updates), so they go out at once. Shared by the admin endpoint and ``python -m api.notify_cli``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Literal, Self

from pydantic import BaseModel, Field, model_validator

from api.text import Line, Text
from progress.events import EventEnvelope, Identifier, SystemError, SystemNotification

MAX_USERS = 1000


TargetAudience = Literal["everyone", "users", "session"]


class Target(BaseModel):
    """Who receives it: ``everyone``, the listed ``user_ids``, or one user's ``session_id``."""

    audience: TargetAudience = "everyone"
    user_ids: list[Identifier] = Field(default_factory=list, max_length=MAX_USERS)
    session_id: Identifier | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.audience == "everyone" and (self.user_ids or self.session_id):
            raise ValueError("audience 'everyone' takes no user_ids or session_id")
        if self.audience == "users" and not self.user_ids:
            raise ValueError("audience 'users' needs user_ids")
        if self.audience == "session" and (len(self.user_ids) != 1 or not self.session_id):
            raise ValueError("audience 'session' needs exactly one user id and a session_id")
        return self


class NotificationRequest(BaseModel):
    """A ``system.notification``."""

    level: Literal["info", "warning", "critical"]
    message: Text = Field(min_length=1, max_length=2000)
    suggested_action: Text | None = Field(default=None, max_length=500)
    target: Target = Field(default_factory=Target)


class ErrorRequest(BaseModel):
    """A ``system.error``."""

    severity: Literal["low", "medium", "high", "critical"]
    message: Text = Field(min_length=1, max_length=2000)
    affected_scope: Line = Field(min_length=1, max_length=200)
    suggested_action: Text | None = Field(default=None, max_length=500)
    target: Target = Field(default_factory=Target)


def build_events(request: NotificationRequest | ErrorRequest) -> list[EventEnvelope]:
    """One event per recipient stream (a user's event never sits in another user's stream)."""
    target = request.target
    if isinstance(request, NotificationRequest):
        # The event's own fields, checked here; each copy adds its envelope.
        make: Callable[..., EventEnvelope] = partial(
            SystemNotification,
            level=request.level,
            message=request.message,
            suggested_action=request.suggested_action,
        )
    else:
        make = partial(
            SystemError,
            severity=request.severity,
            message=request.message,
            affected_scope=request.affected_scope,
            suggested_action=request.suggested_action,
        )
    if target.audience == "everyone":
        return [make(audience="broadcast")]
    if target.audience == "session":
        user = target.user_ids[0]
        return [make(audience="session", user_id=user, session_id=target.session_id)]
    return [make(user_id=user) for user in dict.fromkeys(target.user_ids)]


def level_of(request: NotificationRequest | ErrorRequest) -> str:
    """The level (or severity) as a metrics label."""
    return request.level if isinstance(request, NotificationRequest) else request.severity
