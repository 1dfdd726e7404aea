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
"""

from __future__ import annotations

import asyncio
from typing import Any

import hiredis
import redis.asyncio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

_RETRIES = 3
_MAX_BATCH = 1000

Pending = tuple[tuple[Any, ...], dict[str, Any], "asyncio.Future[Any]"]


class BatchingRedis(redis.asyncio.Redis):
    """``redis.asyncio.Redis`` whose single commands are pipelined.

    Up to ``max_connections`` sender tasks (started on first use) each take everything queued,
    send it in one write and read the replies; commands issued meanwhile wait for the next
    free sender, so the busier Redis is, the bigger the batches get.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._queue: list[Pending] = []
        self._work = asyncio.Event()
        self._senders: set[asyncio.Task[None]] = set()

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((args, options, future))
        self._work.set()
        if len(self._senders) < getattr(self.connection_pool, "max_connections", 1):
            task = loop.create_task(self._sender())
            self._senders.add(task)
            task.add_done_callback(self._senders.discard)
        return await future

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        for task in list(self._senders):
            task.cancel()
        await super().aclose(close_connection_pool)

    async def _sender(self) -> None:
        while True:
            await self._work.wait()
            batch, self._queue = self._queue[:_MAX_BATCH], self._queue[_MAX_BATCH:]
            if not self._queue:
                self._work.clear()
            if batch:
                await self._run(batch)

    async def _run(self, batch: list[Pending]) -> None:
        pending = [item for item in batch if not item[2].done()]
        for attempt in range(_RETRIES + 1):
            try:
                await self._send(pending)
                return
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                pending = [item for item in pending if not item[2].done()]
                if attempt == _RETRIES or not pending:
                    for _args, _options, future in pending:
                        if not future.done():
                            future.set_exception(exc)
                    return
                await asyncio.sleep(min(0.5, 0.05 * 2**attempt))
            except BaseException as exc:
                for _args, _options, future in pending:
                    if not future.done():
                        future.set_exception(RedisConnectionError(f"batch aborted: {exc!r}"))
                raise

    async def _send(self, batch: list[Pending]) -> None:
        """Send ``batch`` on one connection and resolve each future with its reply."""
        await self.initialize()
        pool = self.connection_pool
        conn = await pool.get_connection()
        try:
            await conn.send_packed_command(b"".join(_packed(conn, args) for args, _, _ in batch))
            for args, options, future in batch:
                try:
                    reply = await self.parse_response(conn, args[0], **options)
                except ResponseError as exc:
                    if not future.done():
                        future.set_exception(exc)
                    continue
                if not future.done():
                    future.set_result(reply)
        except BaseException:
            await conn.disconnect()
            raise
        finally:
            await pool.release(conn)


def _packed(conn: Any, args: tuple[Any, ...]) -> bytes:
    """One command in RESP, packed by hiredis (C): redis-py's asyncio connection packs in
    Python, which was a sixth of the CPU of a stream open. Same bytes; arguments hiredis does
    not take go to redis-py's packer, which raises its usual error."""
    if isinstance(args[0], str) and " " in args[0]:
        args = (*args[0].split(), *args[1:])  # "SCRIPT LOAD": redis-py splits the name too
    try:
        return hiredis.pack_command(args)
    except TypeError:
        return b"".join(conn.pack_command(*args))
