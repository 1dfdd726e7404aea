"""Many commands in one round trip on a sync redis-py client, packed and parsed cheaply.

The workers' store sends one script call per stream of a batch. Through redis-py's
``Pipeline`` each call costs more CPU in the sender than the script costs in Redis: every
argument goes through redis-py's encoder in Python, and a pipeline holding ``Script`` objects
first asks ``SCRIPT EXISTS`` in a round trip of its own. Here the commands are packed by
hiredis (C) and sent in one write; script calls are plain ``EVALSHA`` and a ``NOSCRIPT`` reply
(Redis restarted or flushed its script cache) loads the script and repeats only those calls.
Connection handling stays redis-py's: a pooled connection, its health check, and its retry
policy on connection errors, which resends the whole batch as redis-py's pipeline does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, cast

import hiredis
import redis
from redis.exceptions import NoScriptError, ResponseError

Command = tuple[str | bytes | int | float, ...]

# hiredis' stub types the argument as a 1-tuple (``Tuple[X]``, not ``Tuple[X, ...]``) and
# leaves the result untyped; it packs a whole command into bytes.
_pack_command = cast(Callable[[Command], bytes], hiredis.pack_command)


def lua_source(package: str, name: str) -> str:
    """The text of the Lua script ``lua/<name>`` shipped in ``package`` (package data), such as
    ``lua_source("progress", "append.lua")`` for ``progress/lua/append.lua``."""
    return resources.files(package).joinpath("lua", name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class LuaScript:
    """A Lua script called by its SHA1."""

    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())

    def call(self, keys: Sequence[str], args: Sequence[str | bytes | int]) -> Command:
        """The ``EVALSHA`` command that runs the script on ``keys`` and ``args``."""
        return ("EVALSHA", self.sha, len(keys), *keys, *args)


def run_commands(
    client: redis.Redis, commands: Sequence[Command], scripts: Sequence[LuaScript] = ()
) -> list[Any]:
    """Replies to ``commands``, in order, from one round trip (two when a script of
    ``scripts`` had to be loaded first). Raises the first error reply after reading all."""
    replies = _round_trip(client, commands)
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        for script in scripts:
            client.script_load(script.source)
        retried = _round_trip(client, [commands[i] for i in missing])
        for index, reply in zip(missing, retried, strict=True):
            replies[index] = reply
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise reply
    return replies


def _round_trip(client: redis.Redis, commands: Sequence[Command]) -> list[Any]:
    pool = client.connection_pool
    conn = pool.get_connection()
    packed = b"".join([_pack_command(command) for command in commands])

    def exchange() -> list[Any]:
        conn.send_packed_command([packed])
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(conn.read_response())
            except ResponseError as exc:
                replies.append(exc)
        return replies

    try:
        return conn.retry.call_with_retry(exchange, lambda _error: conn.disconnect())
    except BaseException:
        conn.disconnect()  # replies may be left unread: the connection is out of step
        raise
    finally:
        pool.release(conn)
