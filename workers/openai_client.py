"""An ``LLMClient`` for any OpenAI-compatible chat-completions API, streamed over SSE.

``POST {base_url}/chat/completions`` with ``"stream": true``; the answer is ``text/event-stream``
with one ``data: {json chunk}`` event per piece of text and ``data: [DONE]`` at the end. Every
failure comes out as ``TransientLLMError`` (trying again may work) or ``PermanentLLMError``
(fix the settings first), with the HTTP status and an excerpt of the provider's answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any

import httpx

from workers.llm_errors import LLMError, PermanentLLMError, TransientLLMError

#: Characters of a provider's error answer quoted in the exception message.
EXCERPT_CHARS = 200
#: Bytes of an error answer read at most (a misconfigured URL may answer with a large page).
_ERROR_BODY_BYTES = 4096

_SUGGESTIONS: dict[int, str] = {
    401: (
        "The text generator did not accept the API key. Check the API key (LLM_API_KEY): "
        "is it set, still valid, and for this provider?"
    ),
    403: (
        "The API key may not use this model or endpoint. Check the API key (LLM_API_KEY) "
        "and the model (LLM_MODEL)."
    ),
    404: (
        "The text generator was not found. Check the address (LLM_BASE_URL, usually ending "
        "in /v1) and the model name (LLM_MODEL)."
    ),
    400: (
        "The text generator rejected the request. Check the model name (LLM_MODEL) and that "
        "the requested length fits the model's limits."
    ),
    429: "The text generator is rate-limited right now. Try again in a minute.",
}
_SUGGESTIONS[422] = _SUGGESTIONS[400]
_NOT_OPENAI_SUGGESTION = (
    "The text generator's answer was not an OpenAI-compatible stream. Check the address "
    "(LLM_BASE_URL): it should point at the API root, usually ending in /v1."
)


class OpenAICompatibleClient:
    """Streams chat completions; one pooled HTTP client, closed by ``close()``."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        model: str,
        timeout: float = 60.0,
        http: httpx.Client | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self._api_key = api_key
        #: Connect, write, pool, and the longest silence between two chunks of the stream.
        self._timeout = httpx.Timeout(timeout)
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=self._timeout)

    def stream(self, prompt: str, max_tokens: int) -> Iterator[str]:
        """Yield each non-empty ``choices[0].delta.content``, at most ``max_tokens`` of them.

        The request is sent when iteration starts; stopping early closes the response.
        """
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
            "stream": True,
        }
        headers = {"Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        try:
            with self._http.stream(
                "POST", self.url, json=body, headers=headers, timeout=self._timeout
            ) as response:
                if not response.is_success:
                    raise _status_error(response)
                content_type = response.headers.get("content-type", "")
                if "text/event-stream" not in content_type:
                    raise PermanentLLMError(
                        f"POST {self.url}: expected text/event-stream, got {content_type!r}: "
                        f"{_excerpt(response)}",
                        status_code=response.status_code,
                        retry_suggestion=_NOT_OPENAI_SUGGESTION,
                    )
                yielded = 0
                for data in _sse_data(response.iter_lines()):
                    if data == "[DONE]":
                        return
                    piece = _delta_content(data, self.url)
                    if piece:
                        yield piece
                        yielded += 1
                        if yielded >= max_tokens:
                            return
                raise TransientLLMError(
                    f"POST {self.url}: the stream ended after {yielded} pieces without data: [DONE]"
                )
        except httpx.UnsupportedProtocol as exc:
            raise PermanentLLMError(
                f"POST {self.url}: {exc}", retry_suggestion=_NOT_OPENAI_SUGGESTION
            ) from exc
        except httpx.TimeoutException as exc:
            raise TransientLLMError(
                f"POST {self.url}: timed out ({type(exc).__name__}: {exc})"
            ) from exc
        except httpx.RequestError as exc:
            raise TransientLLMError(
                f"POST {self.url}: cannot reach the text generator ({type(exc).__name__}: {exc})"
            ) from exc

    def close(self) -> None:
        """Close the HTTP client, unless it was passed in (then its owner closes it)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> OpenAICompatibleClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _status_error(response: httpx.Response) -> LLMError:
    """``TransientLLMError`` for 408, 429 and 5xx; ``PermanentLLMError`` for anything else."""
    status = response.status_code
    message = f"POST {response.request.url}: HTTP {status}: {_excerpt(response)}"
    retry_after = response.headers.get("retry-after")
    if retry_after:
        message += f" (Retry-After: {retry_after})"
    suggestion = _SUGGESTIONS.get(status)
    if status in (408, 429) or status >= 500:
        return TransientLLMError(message, status_code=status, retry_suggestion=suggestion)
    if 300 <= status < 400:
        suggestion = _NOT_OPENAI_SUGGESTION
    return PermanentLLMError(message, status_code=status, retry_suggestion=suggestion)


def _excerpt(response: httpx.Response) -> str:
    """The start of the answer's body, on one line; the provider's own message if it has one."""
    raw = bytearray()
    for chunk in response.iter_bytes():
        raw += chunk
        if len(raw) >= _ERROR_BODY_BYTES:
            break
    text = raw[:_ERROR_BODY_BYTES].decode("utf-8", errors="replace")
    try:
        error = json.loads(text).get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        text = error["message"]
    elif isinstance(error, str):
        text = error
    text = " ".join(text.split())
    if not text:
        return "(empty body)"
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "..."


def _sse_data(lines: Iterable[str]) -> Iterator[str]:
    """The data of each server-sent event (multi-line data joined by newlines)."""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue  # comment / keep-alive
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value.removeprefix(" "))
    if data:  # a last event without its blank line
        yield "\n".join(data)


def _delta_content(data: str, url: str) -> str | None:
    """``choices[0].delta.content`` of one chunk; errors sent inside the stream raise."""
    try:
        chunk: Any = json.loads(data)
    except ValueError as exc:
        raise PermanentLLMError(
            f"POST {url}: not a JSON chunk: {data[:EXCERPT_CHARS]!r}",
            retry_suggestion=_NOT_OPENAI_SUGGESTION,
        ) from exc
    if not isinstance(chunk, dict):
        raise PermanentLLMError(
            f"POST {url}: not a chunk object: {data[:EXCERPT_CHARS]!r}",
            retry_suggestion=_NOT_OPENAI_SUGGESTION,
        )
    if "error" in chunk:
        error = chunk["error"]
        detail = error.get("message") if isinstance(error, dict) else error
        raise TransientLLMError(
            f"POST {url}: the provider failed mid-stream: {str(detail)[:EXCERPT_CHARS]}"
        )
    choices = chunk.get("choices")
    if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
        return None  # e.g. a final usage chunk
    delta = choices[0].get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) else None
