"""A small SSE client over real HTTP (httpx), reading in a background thread."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class SseEvent:
    """One parsed SSE message."""

    event: str
    data: str
    id: str | None
    retry: int | None

    @property
    def json(self) -> Any:
        """``data`` parsed as JSON."""
        return json.loads(self.data)


def parse_message(message: str) -> SseEvent | None:
    """One SSE message (its lines, without the blank line ending it); None for a comment."""
    fields: dict[str, str] = {}
    data: list[str] = []
    for line in message.split("\n"):
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        else:
            fields[name] = value
    if not data and "event" not in fields:
        return None
    retry = int(fields["retry"]) if "retry" in fields else None
    return SseEvent(fields.get("event", "message"), "\n".join(data), fields.get("id"), retry)


class SseClient:
    """Opens ``url`` and collects its events until closed or the server ends the stream
    (or, with ``read_timeout``, until nothing arrived for that long: a dead link)."""

    def __init__(
        self, url: str, headers: dict[str, str] | None = None, read_timeout: float | None = None
    ) -> None:
        self.url = url
        self.headers = headers or {}
        self.events: list[SseEvent] = []
        self.status: int | None = None
        self.response_headers: httpx.Headers | None = None
        self.body: bytes = b""
        self.ended = threading.Event()
        self._opened = threading.Event()
        self._stop = False
        self._client = httpx.Client(timeout=httpx.Timeout(5, read=read_timeout))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with self._client.stream("GET", self.url, headers=self.headers) as response:
                self.response_headers = response.headers
                if response.status_code != 200:
                    self.body = response.read()
                self.status = response.status_code
                self._opened.set()
                if response.status_code != 200:
                    return
                lines: list[str] = []
                for line in response.iter_lines():
                    if self._stop:
                        return
                    if line:
                        lines.append(line)
                        continue
                    event = parse_message("\n".join(lines))
                    lines = []
                    if event is not None:
                        self.events.append(event)
        except (httpx.HTTPError, RuntimeError):
            pass
        finally:
            self._client.close()
            self._opened.set()
            self.ended.set()

    def wait_open(self, timeout: float = 10) -> int | None:
        """Wait for the response status."""
        self._opened.wait(timeout)
        return self.status

    def wait_for(
        self, predicate: Callable[[list[SseEvent]], bool], timeout: float = 10
    ) -> list[SseEvent]:
        """Wait until ``predicate(events)`` holds; return the events (AssertionError on timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(list(self.events)):
                return list(self.events)
            time.sleep(0.02)
        raise AssertionError(f"timed out; got {[e.event for e in self.events]}")

    def of_type(self, prefix: str) -> list[SseEvent]:
        """Events whose type starts with ``prefix``."""
        return [e for e in self.events if e.event.startswith(prefix)]

    @property
    def last_id(self) -> str | None:
        """The id the browser would send as Last-Event-ID."""
        ids = [e.id for e in self.events if e.id is not None]
        return ids[-1] if ids else None

    def close(self) -> None:
        """Drop the connection."""
        self._stop = True
        self._client.close()
        self._thread.join(5)
