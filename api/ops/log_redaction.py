"""Logging helpers: tokens never reach a log line.

A query parameter is redacted when its name, decoded as the server decodes it
(``sse_toke%6E`` is ``sse_token``), names a token, or when its decoded value has the shape of a
JWT (three base64url parts) or of an sse_token, whatever its name. A JWT or an sse_token anywhere
else in a line is redacted too.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

#: Query parameter names whose values are credentials (compared decoded, lower-cased).
TOKEN_PARAMETERS = frozenset(
    {"sse_token", "token", "access_token", "id_token", "refresh_token", "jwt", "authorization"}
)
REDACTED = "[redacted]"

_QUERY = re.compile(r"\?[^\s\"'<>]+")
#: Three base64url parts: a JWT (the signature may be empty, for ``alg: none``).
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")
#: A JWT outside a query: its header is a JSON object, so it starts with ``eyJ`` (``{"``).
_JWT_ANYWHERE = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
#: An sse_token (``api.auth.tokens``), or what is left of one cut short.
_SSE_TOKEN = re.compile(r"sst1_[A-Za-z0-9_-]*")


def _secret(name: str, value: str) -> bool:
    if unquote_plus(name).strip().lower() in TOKEN_PARAMETERS:
        return True
    value = unquote_plus(value).strip()
    return _JWT_SHAPE.fullmatch(value) is not None or value.startswith("sst1_")


def _redact_part(part: str) -> str:
    name, equals, value = part.partition("=")
    if not equals:
        return REDACTED if _secret("", name) else part
    return f"{name}={REDACTED}" if _secret(name, value) else part


def _redact_query(match: re.Match[str]) -> str:
    return "?" + "&".join(_redact_part(part) for part in match.group(0)[1:].split("&"))


def redact(text: str) -> str:
    """``text`` with every token in a query string, and every JWT and sse_token, replaced."""
    if "?" not in text and "eyJ" not in text and "sst1_" not in text:  # most lines: none
        return text
    return _SSE_TOKEN.sub(REDACTED, _JWT_ANYWHERE.sub(REDACTED, _QUERY.sub(_redact_query, text)))


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
