"""Issue 16: streams learn of a shutdown from the signal itself (public ``signal``), not from
the server's private exit state; the server's own handler still gets every signal."""

from __future__ import annotations

import signal
from types import FrameType

import pytest

from api.stream.response import ExitSignals

pytestmark = pytest.mark.unit


def test_a_signal_is_noted_and_handed_on_to_the_server_and_the_handler_put_back() -> None:
    seen: list[int] = []

    def server_handler(signum: int, frame: FrameType | None) -> None:
        del frame
        seen.append(signum)

    before = signal.signal(signal.SIGTERM, server_handler)
    try:
        signals = ExitSignals()
        signals.install()
        assert not signals.received
        signal.raise_signal(signal.SIGTERM)
        assert signals.received
        assert seen == [signal.SIGTERM]
        signals.uninstall()
        assert signal.getsignal(signal.SIGTERM) is server_handler
    finally:
        signal.signal(signal.SIGTERM, before)


def test_uninstall_leaves_a_handler_installed_after_ours_alone() -> None:
    def later(signum: int, frame: FrameType | None) -> None:
        del signum, frame

    before = signal.getsignal(signal.SIGINT)
    try:
        signals = ExitSignals()
        signals.install()
        signal.signal(signal.SIGINT, later)
        signals.uninstall()
        assert signal.getsignal(signal.SIGINT) is later
    finally:
        signal.signal(signal.SIGINT, before)
