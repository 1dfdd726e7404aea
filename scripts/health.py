"""Waiting for a server that was just started to answer."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx


def wait_until_up(
    url: str, timeout: float, still_running: Callable[[], bool] = lambda: True
) -> bool:
    """True once ``url`` answers below 500; False on timeout or when ``still_running`` says
    the process died (no point waiting for it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and still_running():
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    return False
