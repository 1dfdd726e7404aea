"""Encryption at rest of the sensitive values of audited events (Fernet, keys rotatable).

Keys come from settings as a list, newest first: the newest encrypts, every one decrypts, so
rows sealed under an older key stay readable after a rotation until ``rotate`` re-seals them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from progress.sensitive import Path

#: Used only when AUDIT_ENCRYPTION_KEYS is unset (development): anyone can read it here.
DEV_AUDIT_KEY = "b3YdRz0V9yOzwN1q8v2cQm7xk4J6tHfL5aPpE2sUuGI="


class SealError(ValueError):
    """A sealed value could not be opened with any configured key."""


def parse_keys(value: str) -> list[str]:
    """``"new,old"`` → ``["new", "old"]`` (blank entries ignored)."""
    return [key.strip() for key in value.split(",") if key.strip()]


class Sealer:
    """Seals and opens the sensitive values of an event with the configured keys."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one audit encryption key is needed")
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def seal(self, secrets: list[tuple[Path, Any]]) -> str | None:
        """A token holding ``secrets`` (None when there is nothing to hide)."""
        if not secrets:
            return None
        return self._fernet.encrypt(orjson.dumps(secrets)).decode()

    def open(self, token: str | None) -> list[tuple[Path, Any]]:
        """The values sealed in ``token``; SealError if no key opens it."""
        if token is None:
            return []
        try:
            return [(path, value) for path, value in orjson.loads(self._fernet.decrypt(token))]
        except InvalidToken:
            raise SealError("no configured key opens this sealed value") from None

    def rotate(self, token: str) -> str:
        """``token`` re-sealed under the newest key."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise SealError("no configured key opens this sealed value") from None
