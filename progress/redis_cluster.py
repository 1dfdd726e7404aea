"""Redis Cluster mode, chosen by the URL: ``redis+cluster://[[user]:password@]host:port[,...]``.

A single Redis (``redis://``, ``unix://``) stays the default. With a cluster URL the store, the
API and the library use redis-py's public ``RedisCluster`` (sync and asyncio), seeded with every
listed node (:func:`connect_cluster_async` takes a subclass too: the API's command client
pipelines per master). What changes on a cluster (docs/redis.md, "Redis Cluster"):

- one script call touches one hash tag: the append script runs per stream
  (``streams_per_call`` is forced to 1) and the calls of a batch go out through redis-py's
  cluster pipeline, grouped per node, one round trip per node;
- live events use sharded pub/sub: the append script ``SPUBLISH``-es on the stream's channel,
  which carries the stream's hash tag, so the message stays on the stream's shard.

Only the Celery broker and result backend stay a plain Redis URL (Celery has no cluster support).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import redis
import redis.asyncio
from redis.cluster import ClusterNode
from redis.exceptions import NoScriptError, ResponseError

from progress.redis_pipeline import LuaScript, run_commands

CLUSTER_SCHEME = "redis+cluster"


@dataclass(frozen=True)
class ClusterUrl:
    """The seed nodes and credentials of a ``redis+cluster://`` URL."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> ClusterUrl:
        """ValueError unless ``url`` is ``redis+cluster://[[user]:password@]host:port[,...]``."""
        scheme, sep, rest = url.partition("://")
        if scheme != CLUSTER_SCHEME or not sep:
            raise ValueError(f"not a {CLUSTER_SCHEME}:// URL: {url!r}")
        rest = rest.split("/", 1)[0]
        if "?" in rest:
            raise ValueError(f"a cluster URL takes no options: {url!r}")
        userinfo, at, hosts = rest.rpartition("@")
        username = password = None
        if at:
            user, colon, secret = userinfo.partition(":")
            username = unquote(user) or None
            password = unquote(secret) if colon else None
        nodes = tuple(_host_port(part, url) for part in hosts.split(",") if part)
        if not nodes:
            raise ValueError(f"a cluster URL needs at least one host:port: {url!r}")
        return cls(nodes, username, password)


def _host_port(part: str, url: str) -> tuple[str, int]:
    host, _, port = part.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"cluster seed {part!r} is not host:port in {url!r}")
    return host.strip("[]"), int(port)


def is_cluster_url(url: str) -> bool:
    """True for ``redis+cluster://`` URLs."""
    return url.startswith(f"{CLUSTER_SCHEME}://")


def connect_cluster(url: str, **options: Any) -> redis.RedisCluster:
    """A sync ``RedisCluster`` seeded with the URL's nodes; ``options`` go to its connections."""
    parsed = ClusterUrl.parse(url)
    # redis-py leaves ClusterNode's constructor unannotated.
    nodes = [ClusterNode(host, port) for host, port in parsed.nodes]  # type: ignore[no-untyped-call]
    return redis.RedisCluster(
        startup_nodes=nodes,
        username=parsed.username,
        password=parsed.password,
        **options,
    )


def connect_cluster_async(
    url: str,
    cluster_class: Callable[..., redis.asyncio.RedisCluster] = redis.asyncio.RedisCluster,
    **options: Any,
) -> redis.asyncio.RedisCluster:
    """An asyncio ``RedisCluster`` (or ``cluster_class``, called with the same arguments)
    seeded with the URL's nodes."""
    parsed = ClusterUrl.parse(url)
    return cluster_class(
        startup_nodes=[
            redis.asyncio.cluster.ClusterNode(host, port) for host, port in parsed.nodes
        ],
        username=parsed.username,
        password=parsed.password,
        **options,
    )


Command = tuple[str | bytes | int | float, ...]


def run_cluster_commands(
    client: redis.RedisCluster, commands: Sequence[Command], sources: Sequence[str] = ()
) -> list[Any]:
    """Replies to ``commands`` in order, through redis-py's cluster pipeline (grouped per node,
    one round trip per node); a ``NOSCRIPT`` reply loads ``sources`` on every primary and
    repeats those calls. Raises the first error reply."""
    replies = _pipelined(client, commands)
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        for source in sources:
            client.script_load(source)
        retried = _pipelined(client, [commands[i] for i in missing])
        for index, reply in zip(missing, retried, strict=True):
            replies[index] = reply
    return _raise_first_error(replies)


async def run_cluster_commands_async(
    client: redis.asyncio.RedisCluster, commands: Sequence[Command], sources: Sequence[str] = ()
) -> list[Any]:
    """:func:`run_cluster_commands` on an asyncio ``RedisCluster``."""
    replies = await _pipelined_async(client, commands)
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        for source in sources:
            await client.script_load(source)
        retried = await _pipelined_async(client, [commands[i] for i in missing])
        for index, reply in zip(missing, retried, strict=True):
            replies[index] = reply
    return _raise_first_error(replies)


def _raise_first_error(replies: list[Any]) -> list[Any]:
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise reply
    return replies


def _pipelined(client: redis.RedisCluster, commands: Sequence[Command]) -> list[Any]:
    pipe = client.pipeline()  # type: ignore[no-untyped-call]  # unannotated in redis-py
    for command in commands:
        pipe.execute_command(*command)
    return list(pipe.execute(raise_on_error=False))


async def _pipelined_async(
    client: redis.asyncio.RedisCluster, commands: Sequence[Command]
) -> list[Any]:
    if not commands:
        return []
    pipe = client.pipeline()
    for command in commands:
        pipe.execute_command(*command)
    return list(await pipe.execute(raise_on_error=False))


def run_commands_on(
    client: redis.Redis | redis.RedisCluster,
    commands: Sequence[Command],
    scripts: Sequence[LuaScript] = (),
) -> list[Any]:
    """:func:`progress.redis_pipeline.run_commands` on a single Redis, or
    :func:`run_cluster_commands` on a cluster (one round trip per node)."""
    if isinstance(client, redis.RedisCluster):
        return run_cluster_commands(client, commands, [script.source for script in scripts])
    return run_commands(client, commands, scripts)
