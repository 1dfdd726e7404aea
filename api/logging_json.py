"""Structured logs: one JSON object per line, with the ids every lifecycle line carries.

The ``api`` logger (streams, hub, limits, admin) writes to stderr through this formatter:
``ts``, ``level``, ``logger``, ``message``, ``instance_id`` always, and ``connection_id``,
``user_id``, ``reason``, ``client_ip``, ``delivered`` when the call passed them in ``extra``.
Tokens are redacted like every other log line.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import orjson

from api.logs import redact

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


def install_json_logs(instance_id: str, level: int = logging.INFO) -> None:
    """Send the ``api`` loggers' records to stderr as JSON (once per process)."""
    logger = logging.getLogger("api")
    for handler in logger.handlers:
        if isinstance(handler.formatter, JsonFormatter):
            handler.formatter.instance_id = instance_id
            return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(instance_id))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
