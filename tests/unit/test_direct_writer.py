"""Issue 16: direct writes go through the server's public ASGI ``send``, run at once; a send
that must wait for the socket finishes in a task of its own, and frames keep their order."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message

from api.stream.response import DirectWriter

pytestmark = pytest.mark.unit


class FakeServer:
    """A server's ``send``: writes at once unless paused, then waits for the socket first."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.writable = asyncio.Event()
        self.writable.set()

    async def send(self, message: Message) -> None:
        if not self.writable.is_set():
            await self.writable.wait()
        self.written.append(message["body"])


def test_a_frame_goes_out_in_the_callers_turn() -> None:
    asyncio.run(_a_frame_goes_out_in_the_callers_turn())


async def _a_frame_goes_out_in_the_callers_turn() -> None:
    server = FakeServer()
    writer = DirectWriter(server.send)
    writer.write(b"a")
    writer.write(b"b")
    assert server.written == [b"a", b"b"]
    assert writer.writable


def test_a_paused_socket_holds_the_writer_until_the_frame_went_out() -> None:
    asyncio.run(_a_paused_socket_holds_the_writer_until_the_frame_went_out())


async def _a_paused_socket_holds_the_writer_until_the_frame_went_out() -> None:
    server = FakeServer()
    writer = DirectWriter(server.send)
    server.writable.clear()
    writer.write(b"a")
    assert server.written == []
    assert not writer.writable
    server.writable.set()
    await writer.settle()
    assert server.written == [b"a"]
    assert writer.writable


def test_close_abandons_a_frame_still_waiting() -> None:
    asyncio.run(_close_abandons_a_frame_still_waiting())


async def _close_abandons_a_frame_still_waiting() -> None:
    server = FakeServer()
    writer = DirectWriter(server.send)
    server.writable.clear()
    writer.write(b"a")
    writer.close()
    server.writable.set()
    await asyncio.sleep(0.01)
    assert server.written == []
    assert writer.writable
