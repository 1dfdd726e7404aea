"""Users' notification preferences: stored in Redis, applied by every stream at relay time.

    rt:{u:<user>}:prefs    string: the preferences as JSON (no expiry: a user setting)

A change is published on the control channel (``prefs-changed`` with the new value), so every
instance updates its open streams of that user at once, without a read per event.
Critical notifications and critical errors are never filtered: they are what "critical" means.
"""

from __future__ import annotations

from typing import Literal

import orjson
import redis.asyncio
from pydantic import BaseModel, Field, field_validator

from api.event_meta import EventMeta
from progress.errors import StoreUnavailable
from progress.events import EVENT_TYPES
from progress.keys import KeyLayout
from progress.redis_store import AsyncClient

Level = Literal["info", "warning", "critical"]
_RANK = {"info": 0, "warning": 1, "critical": 2}
#: system.error severities on the notification scale.
_SEVERITY_LEVEL = {"low": "info", "medium": "info", "high": "warning", "critical": "critical"}
_LEVELLED = frozenset({"system.notification", "system.error"})


class NotificationPreferences(BaseModel):
    """What a user does not want to see on their streams."""

    min_level: Level = Field(
        default="info",
        description="system notifications (and errors, by severity) below this are not relayed",
    )
    muted_types: list[str] = Field(
        default_factory=list, max_length=len(EVENT_TYPES), description="event types not relayed"
    )

    @field_validator("muted_types")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(EVENT_TYPES))
        if unknown:
            raise ValueError(f"unknown event types: {', '.join(unknown)}")
        return sorted(set(value))

    def allows(self, meta: EventMeta) -> bool:
        """True when an event with ``meta`` should reach this user."""
        level = _level(meta)
        if level == "critical":
            return True
        if meta.type in self.muted_types:
            return False
        return level is None or _RANK[level] >= _RANK[self.min_level]


DEFAULT_PREFERENCES = NotificationPreferences()


def _level(meta: EventMeta) -> str | None:
    if meta.type not in _LEVELLED or meta.level is None:
        return None
    level = _SEVERITY_LEVEL.get(meta.level, meta.level)
    return level if level in _RANK else None


def changed_message(user_id: str, preferences: NotificationPreferences) -> bytes:
    """What the control channel carries when ``user_id`` changes their preferences."""
    return orjson.dumps(
        {"kind": "prefs-changed", "user_id": user_id, "preferences": preferences.model_dump()}
    )


class PreferenceStore:
    """Reads and writes preferences; a write tells every instance."""

    def __init__(self, client: AsyncClient, prefix: str = "rt") -> None:
        self._client = client
        self._layout = KeyLayout(prefix)

    def key(self, user_id: str) -> str:
        """Where ``user_id``'s preferences are stored."""
        return self._layout.preferences(user_id)

    @staticmethod
    def parse(raw: bytes | str | None) -> NotificationPreferences:
        """Preferences as stored under ``key`` (the defaults when never set)."""
        return NotificationPreferences.model_validate_json(raw) if raw else DEFAULT_PREFERENCES

    async def get(self, user_id: str) -> NotificationPreferences:
        """The user's preferences (the defaults when never set)."""
        try:
            raw = await self._client.get(self.key(user_id))
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise StoreUnavailable(f"Redis unavailable: {exc}") from exc
        return self.parse(raw)

    async def put(self, user_id: str, preferences: NotificationPreferences) -> None:
        """Store the preferences and tell every instance's open streams of the user."""
        message = changed_message(user_id, preferences)
        client = self._client
        try:
            if isinstance(client, redis.asyncio.RedisCluster):
                # A cluster pipeline refuses PUBLISH: two commands.
                await client.set(self.key(user_id), preferences.model_dump_json())
                await client.publish(self._layout.control(), message)
                return
            pipe = client.pipeline(transaction=False)
            pipe.set(self.key(user_id), preferences.model_dump_json())
            pipe.publish(self._layout.control(), message)
            await pipe.execute()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise StoreUnavailable(f"Redis unavailable: {exc}") from exc
