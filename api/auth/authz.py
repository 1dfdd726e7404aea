"""Who may receive which event, decided at relay time (and for history).

A connection receives the events of its own user; an event of another user that sits in its
stream (a content event for a novel the user reads) only if the ``Authorizer`` says so. The
default asks a ``NovelAccess`` whether the user owns or is a member of the novel, with a short
cache that a revocation clears at once.
"""

from __future__ import annotations

import time
from typing import Protocol

import orjson

from api.event_meta import EventMeta
from progress.keys import KeyLayout
from progress.redis_store import AsyncClient


class Authorizer(Protocol):
    """Decides whether ``user_id`` may receive an event stored in its stream."""

    async def may_receive(self, user_id: str, event: EventMeta) -> bool:
        """True to deliver."""
        ...

    def known(self, user_id: str, event: EventMeta) -> bool | None:
        """The answer when it needs no I/O (the hub then writes the event at once), else None."""
        ...

    def forget(self, user_id: str, novel_id: str) -> None:
        """Access of ``user_id`` to ``novel_id`` changed: drop what was cached."""
        ...


class NovelAccess(Protocol):
    """Answers whether a user may read a novel (owner or member)."""

    async def may_read(self, user_id: str, novel_id: str) -> bool:
        """True when ``user_id`` owns or is a member of ``novel_id``."""
        ...


def revocation_message(user_id: str, novel_id: str) -> bytes:
    """What ``KeyLayout.control`` carries when ``user_id`` loses access to ``novel_id``."""
    return orjson.dumps({"kind": "access-revoked", "user_id": user_id, "novel_id": novel_id})


def grant_message(user_id: str, novel_id: str) -> bytes:
    """What ``KeyLayout.control`` carries when ``user_id`` gains access to ``novel_id``."""
    return orjson.dumps({"kind": "access-granted", "user_id": user_id, "novel_id": novel_id})


class RedisNovelAccess:
    """Readers of each novel as a Redis set, kept by the domain (``KeyLayout.readers``)."""

    def __init__(self, client: AsyncClient, prefix: str = "rt") -> None:
        self._client = client
        self._layout = KeyLayout(prefix)

    async def may_read(self, user_id: str, novel_id: str) -> bool:
        """True when ``user_id`` is in the novel's readers."""
        return bool(await self._client.sismember(self._layout.readers(novel_id), user_id))

    async def grant(self, user_id: str, novel_id: str) -> None:
        """Let ``user_id`` read ``novel_id``; every API instance drops a cached refusal (one
        from before a revocation would otherwise hide the novel's events for a while)."""
        await self._client.sadd(self._layout.readers(novel_id), user_id)
        await self._client.publish(self._layout.control(), grant_message(user_id, novel_id))

    async def revoke(self, user_id: str, novel_id: str) -> None:
        """Take access away and tell every API instance to stop relaying at once."""
        await self._client.srem(self._layout.readers(novel_id), user_id)
        await self._client.publish(self._layout.control(), revocation_message(user_id, novel_id))


_CACHE_LIMIT = 100_000


class NovelMembershipAuthorizer:
    """Own events always; others' content events when the user may read the novel."""

    def __init__(self, access: NovelAccess, cache_seconds: float = 30.0) -> None:
        self._access = access
        self._cache_seconds = cache_seconds
        self._cache: dict[tuple[str, str], tuple[bool, float]] = {}
        # Bumped by forget(): an answer read before a revocation must not be cached after it.
        self._generation = 0

    def known(self, user_id: str, event: EventMeta) -> bool | None:
        """The answer without I/O: own events and broadcasts, non-content events, a fresh
        cached membership; None when the novel's readers must be read."""
        if event.audience == "broadcast" or event.user_id == user_id:
            return True
        if not event.type.startswith("content.") or event.novel_id is None:
            return False
        cached = self._cache.get((user_id, event.novel_id))
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        return None

    async def may_receive(self, user_id: str, event: EventMeta) -> bool:
        """True to deliver ``event`` to ``user_id``."""
        answer = self.known(user_id, event)
        if answer is not None:
            return answer
        assert event.novel_id is not None  # known() answers for events without a novel
        key = (user_id, event.novel_id)
        now = time.monotonic()
        generation = self._generation
        allowed = await self._access.may_read(user_id, event.novel_id)
        if generation == self._generation:
            if len(self._cache) >= _CACHE_LIMIT:
                self._drop_expired(now)
            self._cache[key] = (allowed, now + self._cache_seconds)
        return allowed

    def _drop_expired(self, now: float) -> None:
        self._cache = {k: v for k, v in self._cache.items() if v[1] > now}
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()

    def forget(self, user_id: str, novel_id: str) -> None:
        """Drop the cached answer for this pair."""
        self._generation += 1
        self._cache.pop((user_id, novel_id), None)
