"""Structured logs: one JSON object per line, with the ids every lifecycle line carries.

The ``api`` logger (streams, hub, limits, admin) writes to stderr through this formatter:
``ts``, ``level``, ``logger``, ``message``, ``instance_id`` always, and ``connection_id``,
``user_id``, ``reason``, ``client_ip``, ``delivered`` when the call passed them in ``extra``.
Tokens are redacted like every other log line. Lines logged during one event-loop turn are
written together when the turn ends (a burst of opens logs thousands of lines a second; a write
and a flush each was a visible share of an open's CPU).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

import orjson

from api.ops.log_redaction import redact

FIELDS = ("connection_id", "user_id", "instance_id", "reason", "client_ip", "delivered")


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line."""

    def __init__(self, instance_id: str) -> None:
        super().__init__()
        self.instance_id = instance_id

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
            "instance_id": self.instance_id,
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                body[name] = value
        if record.exc_info:
            body["error"] = self.formatException(record.exc_info)
        return orjson.dumps(body, default=str).decode()


class TurnBufferedHandler(logging.StreamHandler[TextIO]):
    """A stream handler whose lines from the event loop's thread go out once per loop turn;
    lines from other threads (or with no loop running) are written at once."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            super().emit(record)
            return
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        if not self._lines:
            loop.call_soon(self.flush)
        self._lines.append(line + self.terminator)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if self._lines:
                text = "".join(self._lines)
                self._lines.clear()
                try:
                    self.stream.write(text)
                except Exception:
                    self.handleError(logging.makeLogRecord({"msg": text}))
        super().flush()


def install_json_logs(instance_id: str, level: int = logging.INFO) -> None:
    """Send the ``api`` loggers' records to stderr as JSON (once per process)."""
    logger = logging.getLogger("api")
    for handler in logger.handlers:
        if isinstance(handler.formatter, JsonFormatter):
            handler.formatter.instance_id = instance_id
            return
    handler = TurnBufferedHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(instance_id))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
