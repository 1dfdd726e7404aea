"""The hub's pub/sub connection to Redis: one socket, RESP parsed by hiredis, replies in batches.

redis-py's ``PubSub`` spends a chain of awaits, a retry wrapper and a dict per message; at
10,000 events/s that was about 40 % of the API's CPU. This link is an asyncio Protocol: each
socket read is fed to ``hiredis.Reader`` whole and every complete reply in it goes to the
listener as one list, so a message costs hiredis's parse and the listener's own work.

What the listener gets, in the order Redis sent them (RESP2 subscriber mode):

    [b"message", channel, payload]
    [b"subscribe", channel, count]      (the confirmation of a SUBSCRIBE, one per channel)
    [b"unsubscribe", channel, count]
    [b"smessage", channel, payload]     (sharded pub/sub on a cluster: api/hub/sharded_link.py)
    [b"ssubscribe", channel, count], [b"sunsubscribe", channel, count]

PING answers only prove the link alive (:meth:`PubSubLink.watch`); an error reply or a protocol
error closes the link. Nothing here reconnects: the hub does, then re-subscribes and resyncs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis

log = logging.getLogger("api.pubsub_link")

Replies = list[list[bytes]]


class LinkLost(ConnectionError):
    """The pub/sub link closed, failed, or stayed silent after a PING."""


@dataclass(frozen=True)
class RedisAddress:
    """Where the link connects: a TCP host and port or a unix socket, and the credentials.

    No database: pub/sub channels are shared by every database of a server.
    """

    host: str = "127.0.0.1"
    port: int = 6379
    unix_path: str | None = None
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str) -> RedisAddress:
        """``redis://[[user]:password@]host[:port][/db]`` or ``unix://[[user]:password@]/path``.

        ValueError for anything else (TLS ``rediss://``, options in the query string): the
        link would otherwise connect differently from the command pool.
        """
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        if parts.scheme not in ("redis", "unix"):
            raise ValueError(f"the pub/sub link supports redis:// and unix:// URLs, not {url!r}")
        if set(query) - {"db"}:
            raise ValueError(f"the pub/sub link takes no URL options but db: {url!r}")
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        if parts.scheme == "unix":
            if not parts.path:
                raise ValueError(f"a unix:// Redis URL needs a socket path: {url!r}")
            return cls(unix_path=unquote(parts.path), username=username, password=password)
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 6379,
            username=username,
            password=password,
        )


def encode_command(*args: str | bytes) -> bytes:
    """One command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class PubSubLink(asyncio.Protocol):
    """One Redis connection in subscriber mode; open it with :meth:`open`."""

    def __init__(self, on_replies: Callable[[Replies], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._parser = hiredis.Reader()
        self._deliver = on_replies
        self._transport: asyncio.Transport | None = None
        self._lost: asyncio.Future[str] = self._loop.create_future()
        #: Waits for the answer to a command sent before subscribing (AUTH).
        self._answer: asyncio.Future[Any] | None = None
        #: Loop time of the last bytes from Redis (a read, not a message: cheap to keep).
        self.last_heard = self._loop.time()
        #: Commands sent during this loop turn, written together when it ends.
        self._outgoing: list[bytes] = []

    @classmethod
    async def open(
        cls,
        address: RedisAddress,
        on_replies: Callable[[Replies], None],
        timeout: float = 2.0,
    ) -> PubSubLink:
        """Connect (and authenticate) within ``timeout``; OSError or LinkLost when it fails."""
        loop = asyncio.get_running_loop()
        link = cls(on_replies)
        async with asyncio.timeout(timeout):
            if address.unix_path is not None:
                await loop.create_unix_connection(lambda: link, address.unix_path)
            else:
                await loop.create_connection(lambda: link, address.host, address.port)
            if address.password is not None:
                try:
                    await link._authenticate(address.username, address.password)
                except BaseException:
                    link.close()
                    raise
        return link

    async def _authenticate(self, username: str | None, password: str) -> None:
        answer: asyncio.Future[Any] = self._loop.create_future()
        self._answer = answer
        self._send(encode_command("AUTH", *([username] if username else []), password))
        done, _ = await asyncio.wait({answer, self._lost}, return_when=asyncio.FIRST_COMPLETED)
        self._answer = None
        if answer not in done:
            raise LinkLost(f"the connection closed during AUTH: {self._lost.result()}")
        if answer.result() != b"OK":
            raise LinkLost(f"Redis refused the pub/sub link's AUTH: {answer.result()}")

    def subscribe(self, *channels: str) -> None:
        """Send SUBSCRIBE; each channel's confirmation reaches the listener."""
        self._send(encode_command("SUBSCRIBE", *channels))

    def unsubscribe(self, *channels: str) -> None:
        """Send UNSUBSCRIBE."""
        self._send(encode_command("UNSUBSCRIBE", *channels))

    def ssubscribe(self, *channels: str) -> None:
        """Send SSUBSCRIBE (sharded pub/sub, Redis 7): every channel must hash to a slot this
        node serves; each confirmation (``ssubscribe``) reaches the listener."""
        self._send(encode_command("SSUBSCRIBE", *channels))

    def sunsubscribe(self, *channels: str) -> None:
        """Send SUNSUBSCRIBE."""
        self._send(encode_command("SUNSUBSCRIBE", *channels))

    def ping(self) -> None:
        """Send PING; its answer refreshes :attr:`last_heard`."""
        self._send(encode_command("PING"))

    def close(self) -> None:
        """Close the socket (idempotent); :meth:`watch` then raises LinkLost."""
        if self._transport is not None:
            self._flush()
            self._transport.close()

    async def watch(self, idle_seconds: float) -> None:
        """Wait until the link is lost, then raise LinkLost; it never returns.

        A link silent for ``idle_seconds`` gets a PING; still silent twice that long, it is
        taken for half-open (Redis or the network gone without a FIN) and closed.
        """
        while True:
            silent = self._loop.time() - self.last_heard
            if silent >= 2 * idle_seconds:
                self.close()
                raise LinkLost(f"the pub/sub link was silent for {silent:.1f} s after a PING")
            if silent >= idle_seconds:
                self.ping()
                wait = idle_seconds
            else:
                wait = idle_seconds - silent
            done, _ = await asyncio.wait({self._lost}, timeout=wait)
            if done:
                raise LinkLost(self._lost.result())

    def _send(self, data: bytes) -> None:
        # A burst of opens subscribes thousands of channels a second: the commands of one loop
        # turn go out in one write (Redis answers each as before), not a syscall each.
        if self._transport is None or self._transport.is_closing():
            raise LinkLost("the pub/sub link is closed")
        if not self._outgoing:
            self._loop.call_soon(self._flush)
        self._outgoing.append(data)

    def _flush(self) -> None:
        if not self._outgoing:
            return
        data = b"".join(self._outgoing)
        self._outgoing.clear()
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """asyncio: the socket is connected."""
        # uvloop's transports do not subclass asyncio.Transport; they have its methods.
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        """asyncio: the socket closed (by us, by Redis, or by an error)."""
        if not self._lost.done():
            self._lost.set_result(f"the pub/sub link closed ({exc or 'end of stream'})")

    def data_received(self, data: bytes) -> None:
        """asyncio: hand every complete reply in ``data`` to the listener, in one list."""
        self.last_heard = self._loop.time()
        reader = self._parser
        reader.feed(data)
        replies: Replies = []
        failure = None
        try:
            reply = reader.gets()
            while reply is not False:
                if type(reply) is list and len(reply) == 3:
                    replies.append(reply)
                elif self._answer is not None and not self._answer.done():
                    self._answer.set_result(reply)
                elif isinstance(reply, Exception):
                    failure = f"Redis answered the pub/sub link with an error: {reply}"
                    break
                reply = reader.gets()
        except hiredis.ProtocolError as exc:
            failure = f"unreadable answer from Redis: {exc}"
        if replies:
            try:
                self._deliver(replies)
            except Exception:
                # The hub drops what it cannot route; a failure past that must not end the link.
                log.exception("the pub/sub listener failed on %d replies", len(replies))
        if failure is not None:
            self._fail(failure)

    def _fail(self, reason: str) -> None:
        log.error("%s; closing the link", reason)
        if not self._lost.done():
            self._lost.set_result(reason)
        self.close()
