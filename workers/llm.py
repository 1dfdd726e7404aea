"""Text generation behind one small interface, so tasks report progress from real work."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Protocol

from workers.llm_errors import LLMError, PermanentLLMError, TransientLLMError
from workers.openai_client import OpenAICompatibleClient
from workers.settings import WorkerSettings

__all__ = [
    "LLMClient",
    "LLMError",
    "LocalGenerator",
    "OpenAICompatibleClient",
    "PermanentLLMError",
    "TransientLLMError",
    "make_llm_client",
]

_WORDS = (
    "the tide rose over the harbour while lanterns swung in the salt wind and she remembered "
    "her brother's promise to return before the storm broke across the old lighthouse where "
    "letters waited unopened beneath a loose stone"
).split()


class LLMClient(Protocol):
    """Streams the tokens of a completion for ``prompt``, at most ``max_tokens`` of them."""

    def stream(self, prompt: str, max_tokens: int) -> Iterator[str]:
        """Yield tokens as they are produced."""
        ...


class LocalGenerator:
    """Deterministic text at a set pace: the default, so the system runs with no network."""

    def __init__(self, tokens_per_second: float = 200.0) -> None:
        self.delay = 1.0 / tokens_per_second

    def stream(self, prompt: str, max_tokens: int) -> Iterator[str]:
        """The same prompt always yields the same tokens."""
        seed = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:4], "big")
        for index in range(max_tokens):
            time.sleep(self.delay)
            yield _WORDS[(seed + index * 7) % len(_WORDS)]


def make_llm_client(settings: WorkerSettings) -> LLMClient:
    """The generator the settings ask for: ``local`` (the default) or an OpenAI-compatible API.

    An ``OpenAICompatibleClient`` holds a connection pool: call its ``close()`` when done.
    """
    if settings.llm == "local":
        return LocalGenerator(settings.local_tokens_per_second)
    if not settings.llm_base_url:
        raise ValueError(
            f"LLM provider {settings.llm!r} needs LLM_BASE_URL "
            "(e.g. https://api.openai.com/v1); set it, or set LLM_PROVIDER=local"
        )
    return OpenAICompatibleClient(
        base_url=settings.llm_base_url,
        api_key=settings.llm_api_key,
        model=settings.llm_model,
    )
