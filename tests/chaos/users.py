"""Users of a chaos scenario: browser tabs that stream and resume as docs/api.md tells clients
to, and the novels they start through the API."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from tests.sse_client import SseClient, SseEvent

STREAM = "/api/v1/events/stream"
#: Messages about the connection, not the user's data.
CONTROL = frozenset(
    {
        "connection.established",
        "heartbeat",
        "stream.reset",
        "reconnect",
        "server.restart",
        "auth.expiring",
        "realtime.mode",
    }
)
#: A stream silent this long is dead (the server sends a heartbeat every second).
READ_TIMEOUT = 5.0


@dataclass
class Tab:
    """One EventSource of ``user``: streams from the first base URL that answers, and after
    any end or failure gets a new sse_token and resumes with Last-Event-ID (its last ``id:``)."""

    user: str
    jwt: str
    bases: list[str]
    events: list[SseEvent] = field(default_factory=list)
    attempts: int = 0
    refusals: Counter[str] = field(default_factory=Counter)
    _cursor: str | None = None
    _last_token: str | None = None
    _current: SseClient | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _open: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Tab:
        """Start streaming in a background thread."""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def wait_open(self, timeout: float = 20) -> bool:
        """Whether a stream is open (waiting up to ``timeout``)."""
        return self._open.wait(timeout)

    def stop(self) -> None:
        """Close the stream and stop reconnecting."""
        self._stop.set()
        current = self._current
        if current is not None:
            current.close()
        if self._thread is not None:
            self._thread.join(10)

    def domain_events(self) -> list[SseEvent]:
        """Every data event received so far, over all connections."""
        return [e for e in list(self.events) if e.event not in CONTROL]

    def all_events(self) -> list[SseEvent]:
        """Every event received so far, over all connections, the open one's included."""
        current = self._current
        live = list(current.events) if current is not None and self._open.is_set() else []
        return list(self.events) + live

    def of_type(self, kind: str) -> list[SseEvent]:
        """Data events of type ``kind`` received so far (including the open connection's)."""
        current = self._current
        live = list(current.events) if current is not None and self._open.is_set() else []
        return [e for e in list(self.events) + live if e.event == kind]

    def _run(self) -> None:
        turn = 0
        while not self._stop.is_set():
            base = self.bases[turn % len(self.bases)]
            self.attempts += 1
            if self._stream_once(base):
                continue
            turn += 1
            self._stop.wait(0.3)

    def _stream_once(self, base: str) -> bool:
        """One connection until it ends; False when it was refused or could not open."""
        refused = self._token(base)
        if refused is not None:
            self.refusals[refused] += 1
            return False
        assert isinstance(self._last_token, str)
        headers = {"Last-Event-ID": self._cursor} if self._cursor else {}
        client = SseClient(f"{base}{STREAM}?sse_token={self._last_token}", headers, READ_TIMEOUT)
        self._current = client
        status = client.wait_open(10)
        if status != 200:
            client.close()
            self.refusals[_refusal(status, client.body)] += 1
            return False
        self._open.set()
        while not client.ended.is_set() and not self._stop.is_set():
            client.ended.wait(0.1)
        client.close()
        self._open.clear()
        self.events.extend(client.events)
        self._cursor = client.last_id or self._cursor
        return True

    def _token(self, base: str) -> str | None:
        """Fetch an sse_token into ``_last_token``; the refusal reason if that failed."""
        try:
            response = httpx.post(
                f"{base}/api/v1/auth/sse-token",
                headers={"Authorization": f"Bearer {self.jwt}"},
                timeout=5,
            )
        except httpx.HTTPError as error:
            return f"sse-token {type(error).__name__}"
        if response.status_code != 200:
            return _refusal(response.status_code, response.content, "sse-token ")
        self._last_token = str(response.json()["sse_token"])
        return None


def _refusal(status: int | None, body: bytes, what: str = "") -> str:
    """A short name for a refused open: ``429 too_many_connections``, ``503``, ``no answer``."""
    if status is None:
        return f"{what}no answer"
    try:
        code = httpx.Response(status, content=body).json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = ""
    return f"{what}{status} {code}".strip()


def dev_jwt(base: str, user: str) -> str:
    """A platform JWT for ``user`` from the dev endpoint."""
    response = httpx.post(
        f"{base}/api/v1/auth/dev-token", json={"user_id": user, "ttl_seconds": 3600}, timeout=10
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def open_tabs(bases: list[str], users: list[str], per_user: int = 1) -> list[Tab]:
    """``per_user`` tabs for each user, all streaming (AssertionError if one never opened)."""
    tabs = [
        Tab(user, dev_jwt(bases[0], user), list(bases)).start()
        for user in users
        for _ in range(per_user)
    ]
    for tab in tabs:
        assert tab.wait_open(30), f"{tab.user}'s stream never opened: {dict(tab.refusals)}"
    return tabs


def close_tabs(tabs: list[Tab]) -> None:
    """Stop every tab."""
    for tab in tabs:
        tab.stop()


def start_novel(base: str, jwt: str, title: str, chapters: int = 2) -> tuple[str, str]:
    """``POST /api/v1/novels``: the novel id and its workflow task id."""
    response = httpx.post(
        f"{base}/api/v1/novels",
        json={
            "title": title,
            "premise": f"{title}: a storm and a keeper",
            "chapter_count": chapters,
        },
        headers={"Authorization": f"Bearer {jwt}"},
        timeout=15,
    )
    assert response.status_code == 202, response.text
    body = response.json()
    return str(body["novel_id"]), str(body["task_id"])


def wait_until(condition: Callable[[], bool], timeout: float, every: float = 0.2) -> bool:
    """Poll ``condition()`` until true or ``timeout``; its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
