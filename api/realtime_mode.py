"""The realtime mode: whether a user's browser streams (SSE) or polls, switchable at runtime.

Operators store one rule in Redis (``KeyLayout.realtime_mode``): ``sse`` for everyone, or
``polling`` for ``percent`` of users. Which users poll is stable: a user's bucket is a hash of
their id, so the same 10% poll on every instance and on every request. A change is published
on the control channel, and every hub moves the affected streams at once (``realtime.mode``
event, then the stream ends). ``SSE_ENABLED=false`` in settings means polling for everyone,
whatever Redis holds.

CLI: ``python -m api.realtime_mode show`` | ``python -m api.realtime_mode set polling
[--percent N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
from datetime import UTC, datetime
from typing import Literal, cast

import orjson
import redis.asyncio
from pydantic import BaseModel, Field

from progress.keys import KeyLayout
from progress.redis_store import AsyncClient, connect_async
from progress.settings import ProgressSettings

Mode = Literal["sse", "polling"]


class ModeRule(BaseModel):
    """The operators' choice: ``polling`` applies to ``percent`` of users; ``sse`` to all."""

    mode: Mode = "sse"
    percent: int = Field(default=100, ge=0, le=100)
    updated_at: str | None = None


def bucket_of(user_id: str) -> int:
    """The user's stable bucket, 0..99."""
    digest = hashlib.blake2b(user_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 100


def mode_for(user_id: str, rule: ModeRule, sse_enabled: bool = True) -> Mode:
    """The mode ``user_id``'s browser should use under ``rule``."""
    if not sse_enabled:
        return "polling"
    if rule.mode == "polling" and bucket_of(user_id) < rule.percent:
        return "polling"
    return "sse"


def polls_anyone(rule: ModeRule, sse_enabled: bool = True) -> bool:
    """True when ``mode_for`` gives ``polling`` to some user under ``rule``."""
    return not sse_enabled or (rule.mode == "polling" and rule.percent > 0)


def mode_message(rule: ModeRule) -> bytes:
    """What the control channel carries when the rule changes."""
    return orjson.dumps({"kind": "realtime-mode", "rule": rule.model_dump()})


class RealtimeModeStore:
    """Reads and writes the rule in Redis; a write tells every instance at once."""

    def __init__(self, client: AsyncClient, prefix: str = "rt") -> None:
        self._client = client
        self._layout = KeyLayout(prefix)

    async def get(self) -> ModeRule:
        """The stored rule; ``sse`` for everyone when none is stored."""
        # This client never decodes replies; redis-py types them for both modes.
        raw = cast(dict[bytes, bytes], await self._client.hgetall(self._layout.realtime_mode()))
        if not raw:
            return ModeRule()
        return ModeRule(
            mode=raw[b"mode"].decode(),  # type: ignore[arg-type]
            percent=int(raw.get(b"percent", b"100")),
            updated_at=raw[b"updated_at"].decode() if b"updated_at" in raw else None,
        )

    async def set(self, mode: Mode, percent: int = 100) -> ModeRule:
        """Store a new rule and publish it to every instance's hub."""
        rule = ModeRule(mode=mode, percent=percent, updated_at=datetime.now(UTC).isoformat())
        fields = {"mode": rule.mode, "percent": rule.percent, "updated_at": rule.updated_at}
        client = self._client
        if isinstance(client, redis.asyncio.RedisCluster):
            # No MULTI across nodes, nor PUBLISH in a cluster pipeline: store, then publish.
            await client.hset(self._layout.realtime_mode(), mapping=fields)  # type: ignore[arg-type]
            await client.publish(self._layout.control(), mode_message(rule))
            return rule
        async with client.pipeline(transaction=True) as pipe:
            pipe.hset(self._layout.realtime_mode(), mapping=fields)  # type: ignore[arg-type]
            pipe.publish(self._layout.control(), mode_message(rule))
            await pipe.execute()
        return rule


async def _cli(options: argparse.Namespace) -> int:
    settings = ProgressSettings()
    client = connect_async(settings.redis_url)
    store = RealtimeModeStore(client, settings.key_prefix)
    try:
        if options.command == "set":
            rule = await store.set(options.mode, options.percent)
        else:
            rule = await store.get()
    finally:
        await client.aclose()
    sys.stdout.write(rule.model_dump_json() + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Show or change the realtime mode.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("show", help="print the stored rule")
    setter = commands.add_parser("set", help="store a new rule (takes effect at once)")
    setter.add_argument("mode", choices=["sse", "polling"])
    setter.add_argument("--percent", type=int, default=100, choices=range(0, 101), metavar="0-100")
    return asyncio.run(_cli(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
