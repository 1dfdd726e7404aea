"""A Redis client that sends the commands of one event-loop turn together (auto-pipelining).

Opening a stream costs four commands (spend the token, take the lease, read two stream
states). With one connection per command in flight, a burst of 2,000 opens either needs
hundreds of connections or queues for the few there are. Here commands are queued and a few
sender tasks (one per pooled connection) each send whatever is queued as one pipelined write
and read the replies back in order. A burst then costs a handful of round trips, on at most
``max_connections`` connections.

Semantics stay those of ``redis.asyncio.Redis.execute_command``: same reply parsing, errors
(``ResponseError`` and subclasses such as ``NoScriptError``) raised to the caller of that one
command, connection errors retried with backoff for the commands not yet answered. Commands are
not made atomic together (that is what MULTI is for); ``pipeline()`` and pub/sub are unchanged.

Only public interfaces of redis-py: a batch is packed by hiredis (``hiredis.pack_command``),
written with the connection's ``send_packed_command`` and its replies read one by one with
``Redis.parse_response``, so redis-py's reply callbacks, error classes and decoding apply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import hiredis
import redis.asyncio
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

_RETRIES = 3
_MAX_BATCH = 1000
_PARALLEL_AT = 64

Pending = tuple[tuple[Any, ...], dict[str, Any], "asyncio.Future[Any]"]


class RedisUnreachable(RedisConnectionError):
    """No connection to Redis could be made (the pool's connect retries included): the batch
    fails at once, as trying again right away would only repeat those retries."""


class BatchingRedis(redis.asyncio.Redis):
    """``redis.asyncio.Redis`` whose single commands are pipelined.

    Up to ``max_connections`` sender tasks (started on first use) each take everything queued,
    send it in one write and read the replies; commands issued meanwhile wait for the sender
    in flight to come back, so the busier Redis is, the bigger the batches get. Another
    sender starts a round trip alongside only when ``_PARALLEL_AT`` commands wait: a round
    trip per connection for a handful of commands each cost more CPU (a write, a read and a
    wake-up per batch) and more latency than one bigger batch.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._queue: list[Pending] = []
        self._work = asyncio.Event()
        self._senders: set[asyncio.Task[None]] = set()
        #: Senders between taking a batch and having nothing more to send.
        self._busy = 0
        #: Called with the error when a batch failed for good (Redis unreachable).
        self.on_unreachable: Callable[[Exception], None] | None = None

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((args, options, future))
        if not self._busy or len(self._queue) >= _PARALLEL_AT:
            self._work.set()
        if len(self._senders) < getattr(self.connection_pool, "max_connections", 1):
            task = loop.create_task(self._sender())
            self._senders.add(task)
            task.add_done_callback(self._senders.discard)
        return await future

    def register_script(self, script: str | bytes) -> AsyncScript:  # type: ignore[override]
        return BatchedScript(self, script)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        for task in list(self._senders):
            task.cancel()
        await super().aclose(close_connection_pool)

    async def _sender(self) -> None:
        while True:
            await self._work.wait()
            batch = self._take()
            if not batch:
                continue
            self._busy += 1
            try:
                await self._run(batch)
            finally:
                self._busy -= 1
            if self._queue:  # queued while this sender gave its connection back
                self._work.set()

    def _take(self) -> list[Pending]:
        batch, self._queue = self._queue[:_MAX_BATCH], self._queue[_MAX_BATCH:]
        if not self._queue:
            self._work.clear()
        return batch

    async def _run(self, batch: list[Pending]) -> None:
        pending = [item for item in batch if not item[2].done()]
        for attempt in range(_RETRIES + 1):
            try:
                await self._send(pending)
                return
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                pending = [item for item in pending if not item[2].done()]
                if attempt == _RETRIES or not pending or isinstance(exc, RedisUnreachable):
                    for _args, _options, future in pending:
                        if not future.done():
                            future.set_exception(exc)
                    if pending and self.on_unreachable is not None:
                        self.on_unreachable(exc)
                    return
                await asyncio.sleep(min(0.5, 0.05 * 2**attempt))
            except BaseException as exc:
                for _args, _options, future in pending:
                    if not future.done():
                        future.set_exception(RedisConnectionError(f"batch aborted: {exc!r}"))
                raise

    async def _send(self, batch: list[Pending]) -> None:
        """Send ``batch`` on one connection and resolve each future with its reply; then, on
        the same connection, what was queued meanwhile (taking and giving back a pooled
        connection per batch was a visible share of a burst's CPU). What is sent so is added
        to ``batch``, so a connection error retries it too."""
        await self.initialize()
        pool = self.connection_pool
        try:
            conn = await pool.get_connection()
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise RedisUnreachable(str(exc)) from exc
        try:
            part = batch
            # One deadline per exchange instead of redis-py's timer per reply and task per write
            # (about a third of this client's CPU per command); the pooled connection is this
            # sender's alone until released, and gets its own timeout back before.
            timeout = conn.socket_timeout
            conn.socket_timeout = None
            try:
                while part:
                    try:
                        async with asyncio.timeout(timeout):
                            await self._exchange(conn, part)
                    except TimeoutError as exc:
                        raise RedisTimeoutError("Timeout reading from Redis") from exc
                    part = [item for item in self._take() if not item[2].done()]
                    batch.extend(part)
            finally:
                conn.socket_timeout = timeout
        except BaseException:
            await conn.disconnect()
            raise
        finally:
            await pool.release(conn)

    async def _exchange(self, conn: Any, batch: list[Pending]) -> None:
        await conn.send_packed_command(b"".join(_packed(conn, args) for args, _, _ in batch))
        for args, options, future in batch:
            try:
                reply = await self.parse_response(conn, args[0], **options)
            except ResponseError as exc:
                _fail(future, exc)
                continue
            _resolve(future, reply)


class BatchedScript(AsyncScript):
    """A script run as one queued ``EVALSHA``: redis-py's ``AsyncScript`` goes through three
    more calls and an import per run (a stream open runs one to three scripts). Loads itself when
    Redis does not know it, as ``AsyncScript`` does; run on a pipeline, it is ``AsyncScript``.
    Registered on a batching client (this one's or a cluster's, api/hub/cluster_batching.py)."""

    async def __call__(
        self,
        keys: Sequence[Any] | None = None,
        args: Iterable[Any] | None = None,
        client: Any = None,
    ) -> Any:
        client = self.registered_client if client is None else client
        if client is not self.registered_client:  # a pipeline
            return await super().__call__(keys, args, client)
        keys = keys or ()
        try:
            return await client.execute_command("EVALSHA", self.sha, len(keys), *keys, *args or ())
        except NoScriptError:
            self.sha = await client.script_load(self.script)
            return await client.execute_command("EVALSHA", self.sha, len(keys), *keys, *args or ())


def _resolve(future: asyncio.Future[Any], reply: Any) -> None:
    if not future.done():
        future.set_result(reply)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


# hiredis' stub types the argument as a 1-tuple (``Tuple[X]``, not ``Tuple[X, ...]``) and
# leaves the result untyped; it packs a whole command into bytes.
_pack_command = cast(Callable[[tuple[Any, ...]], bytes], hiredis.pack_command)


def _packed(conn: Any, args: tuple[Any, ...]) -> bytes:
    """One command in RESP, packed by hiredis (C): redis-py's asyncio connection packs in
    Python, which was a sixth of the CPU of a stream open. Same bytes; arguments hiredis does
    not take go to redis-py's packer, which raises its usual error."""
    if isinstance(args[0], str) and " " in args[0]:
        args = (*args[0].split(), *args[1:])  # "SCRIPT LOAD": redis-py splits the name too
    try:
        return _pack_command(args)
    except TypeError:
        return b"".join(conn.pack_command(*args))
