"""A real HTTP server speaking the OpenAI chat-completions streaming protocol, for tests.

``POST /v1/chat/completions`` answers ``text/event-stream`` (chunked, HTTP/1.1): one
``chat.completion.chunk`` per configured token, then ``data: [DONE]``. It can fail the next N
requests with a given status, cut a stream short, or wait before answering; it records every
request. Runs in a background thread on a free 127.0.0.1 port; use it as a context manager.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

COMPLETIONS_PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class _Failure:
    remaining: int
    status: int
    body: str


@dataclass
class _Config:
    tokens: list[str] = field(default_factory=list)
    #: Stream only this many tokens, then close without ``[DONE]``.
    cut_after: int | None = None
    #: Seconds to wait before sending the status line.
    delay_seconds: float = 0.0
    failures: list[_Failure] = field(default_factory=list)


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins every handler thread
    block_on_close = True

    def __init__(self, fake: FakeOpenAIServer, port: int) -> None:
        self.fake = fake
        self.live: set[socket.socket] = set()
        self.live_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (timeouts, connection tests) is expected, not an error."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked, like real providers
    timeout = 10  # an idle keep-alive connection ends on its own
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.live_lock:
            self.server.live.add(self.connection)

    def finish(self) -> None:
        with self.server.live_lock:
            self.server.live.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        fake = self.server.fake
        config = fake._record_and_plan(
            RecordedRequest(
                "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body
            )
        )
        try:
            if config.delay_seconds:
                time.sleep(config.delay_seconds)
            if self.path != COMPLETIONS_PATH:
                self._send_json(404, {"error": {"message": f"no route {self.path}"}})
            elif config.failures:
                failure = config.failures[0]
                self._send_json(failure.status, {"error": {"message": failure.body}})
            else:
                self._stream(config)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away: nothing left to do

    def _send_json(self, status: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, config: _Config) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._chunk(self._event({"role": "assistant", "content": ""}))  # like OpenAI's first
        tokens = config.tokens if config.cut_after is None else config.tokens[: config.cut_after]
        for token in tokens:
            self._chunk(self._event({"content": token}))
        if config.cut_after is not None:
            self.wfile.flush()
            self.close_connection = True  # no [DONE], no last chunk: the stream just stops
            return
        self._chunk(self._event({}, finish_reason="stop"))
        self._chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    @staticmethod
    def _event(delta: dict[str, str], finish_reason: str | None = None) -> bytes:
        chunk = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "fake-model",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }
        return f"data: {json.dumps(chunk)}\n\n".encode()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


class FakeOpenAIServer:
    """Configure with ``tokens``; ``fail_next``, ``cut_after``, ``delay_seconds`` for faults."""

    def __init__(self, tokens: Sequence[str] = ()) -> None:
        self._lock = threading.Lock()
        self._config = _Config(tokens=list(tokens))
        self._requests: list[RecordedRequest] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``, what ``OpenAICompatibleClient`` takes."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def set_tokens(self, tokens: Sequence[str]) -> None:
        """Tokens of every following stream."""
        with self._lock:
            self._config.tokens = list(tokens)

    def fail_next(self, count: int, status: int, message: str = "fake failure") -> None:
        """Answer the next ``count`` requests with ``status`` and an OpenAI-style error body."""
        with self._lock:
            self._config.failures.append(_Failure(count, status, message))

    def cut_after(self, count: int | None) -> None:
        """Streams end after ``count`` tokens without ``[DONE]`` (``None``: whole streams)."""
        with self._lock:
            self._config.cut_after = count

    def delay(self, seconds: float) -> None:
        """Wait ``seconds`` before answering each request."""
        with self._lock:
            self._config.delay_seconds = seconds

    def _record_and_plan(self, request: RecordedRequest) -> _Config:
        """Record ``request``; what to answer it (a snapshot, one failure used up)."""
        with self._lock:
            self._requests.append(request)
            config = _Config(
                tokens=list(self._config.tokens),
                cut_after=self._config.cut_after,
                delay_seconds=self._config.delay_seconds,
            )
            if self._config.failures:
                failure = self._config.failures[0]
                config.failures = [failure]
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._config.failures.pop(0)
            return config

    def start(self) -> FakeOpenAIServer:
        """Listen on a free loopback port (after ``stop``: the same one again, so a provider
        switched off and on keeps its ``base_url``) and serve in a background thread."""
        self._server = _Server(self, self.port)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end open connections, join every thread, close the socket."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        with server.live_lock:
            live = list(server.live)
        for conn in live:
            try:
                conn.shutdown(socket.SHUT_RDWR)  # unblocks a handler waiting on keep-alive
            except OSError:
                pass
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
