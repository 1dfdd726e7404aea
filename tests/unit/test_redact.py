"""Log redaction: tokens by decoded parameter name, and anything shaped like a JWT or an
sse_token."""

from __future__ import annotations

import pytest

from api.ops.log_redaction import redact

JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbm4ifQ.c2lnbmF0dXJl"
SSE_TOKEN = "sst1_1796457600_Q2x3eV9hbm5fMTIzNDU2Nzg5MC1hYmNk"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (f"GET /s?sse_token={JWT}&a=1", "GET /s?sse_token=[redacted]&a=1"),
        ("GET /s?sse_toke%6E=opaque&a=1", "GET /s?sse_toke%6E=[redacted]&a=1"),
        ("GET /s?ACCESS_TOKEN=opaque", "GET /s?ACCESS_TOKEN=[redacted]"),
        (f"GET /s?note={JWT}", "GET /s?note=[redacted]"),
        ("GET /s?n=eyJhbGciOiJIUzI1NiJ9%2EeyJzdWIiOiJhIn0%2Esig", "GET /s?n=[redacted]"),
        (f"GET /s?{JWT} HTTP/1.1", "GET /s?[redacted] HTTP/1.1"),
        (f"bearer {JWT} refused", "bearer [redacted] refused"),
        (f"GET /s?t={SSE_TOKEN}&a=1", "GET /s?t=[redacted]&a=1"),
        (f"spent {SSE_TOKEN}, then {SSE_TOKEN[:12]}", "spent [redacted], then [redacted]"),
        ("GET /s?a=1&b=v1,u:x~1-0 HTTP/1.1", "GET /s?a=1&b=v1,u:x~1-0 HTTP/1.1"),
        ("stream opened", "stream opened"),
    ],
)
def test_redact(line: str, expected: str) -> None:
    assert redact(line) == expected
