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

#: Anyone can read it here: seals only in explicit development mode (AUDIT_ALLOW_DEV_KEY).
DEV_AUDIT_KEY = "b3YdRz0V9yOzwN1q8v2cQm7xk4J6tHfL5aPpE2sUuGI="

MISSING_KEYS = (
    "AUDIT_ENCRYPTION_KEYS is not set (or its newest key is the public development key): "
    "sensitive fields of audited events would be sealed with a key published in the "
    'repository. Set AUDIT_ENCRYPTION_KEYS to a Fernet key (python -c "from '
    'cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"), or set '
    "AUDIT_ALLOW_DEV_KEY=true on a development machine"
)
DEV_KEY_WARNING = (
    "AUDIT_ENCRYPTION_KEYS is not set: sensitive fields of audited events are sealed with the "
    "PUBLIC development key (AUDIT_ALLOW_DEV_KEY): development only"
)


class SealError(ValueError):
    """A sealed value could not be opened with any configured key."""


class MissingAuditKeys(RuntimeError):
    """No private key to seal with, and the public development key is not allowed."""


def parse_keys(value: str) -> list[str]:
    """``"new,old"`` → ``["new", "old"]`` (blank entries ignored)."""
    return [key.strip() for key in value.split(",") if key.strip()]


def sealing_keys(value: str, allow_dev_key: bool) -> list[str]:
    """The keys to seal and open with, newest first: the configured ones, or the public
    development key when allowed; MissingAuditKeys when the newest would be public otherwise.
    The public key may stay as an older key (rows sealed in development, before a rotation)."""
    keys = parse_keys(value) or [DEV_AUDIT_KEY]
    if keys[0] == DEV_AUDIT_KEY and not allow_dev_key:
        raise MissingAuditKeys(MISSING_KEYS)
    return keys


def seals_with_dev_key(keys: Sequence[str]) -> bool:
    """True when the newest key (the one that seals) is the public development key."""
    return bool(keys) and keys[0] == DEV_AUDIT_KEY


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
