"""Logging helpers: tokens never reach a log line."""

from __future__ import annotations

import logging
import re

_TOKEN = re.compile(r"((?:sse_token|token|access_token)=)[^&\s\"]+")


def redact(text: str) -> str:
    """``text`` with every token query value replaced."""
    if "token=" not in text:  # every name _TOKEN matches ends so; most lines have none
        return text
    return _TOKEN.sub(r"\1[redacted]", text)


class RedactTokens(logging.Filter):
    """Rewrites token values in a record's message and arguments (uvicorn's access log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def install_redaction() -> None:
    """Attach the filter to uvicorn's loggers (once)."""
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
