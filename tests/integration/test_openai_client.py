"""OpenAICompatibleClient against a real HTTP server speaking the chat-completions SSE protocol."""

from __future__ import annotations

import pickle
from collections.abc import Iterator

import pytest

from progress.failures import advise
from tests.fake_openai_server import COMPLETIONS_PATH, FakeOpenAIServer
from workers.llm import (
    LLMError,
    LocalGenerator,
    OpenAICompatibleClient,
    PermanentLLMError,
    TransientLLMError,
    make_llm_client,
)
from workers.settings import WorkerSettings

pytestmark = pytest.mark.integration

TOKENS = ["Once", " upon", " a", " time", ",", " the", " tide", " rose", "."]
API_KEY = "sk-test-0123456789"
MODEL = "fake-model-1"


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(TOKENS) as fake:
        yield fake


@pytest.fixture
def client(server: FakeOpenAIServer) -> Iterator[OpenAICompatibleClient]:
    with OpenAICompatibleClient(server.base_url, API_KEY, MODEL, timeout=5.0) as llm:
        yield llm


def test_tokens_stream_in_order_and_request_carries_model_limit_and_key(
    server: FakeOpenAIServer, client: OpenAICompatibleClient
) -> None:
    received = list(client.stream("Write an opening line.", max_tokens=50))

    assert received == TOKENS
    [request] = server.requests
    assert request.method == "POST"
    assert request.path == COMPLETIONS_PATH
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.body == {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Write an opening line."}],
        "max_tokens": 50,
        "stream": True,
    }


def test_reports_progress_as_tokens_arrive(
    server: FakeOpenAIServer, client: OpenAICompatibleClient
) -> None:
    max_tokens = 40
    server.set_tokens([f" w{i}" for i in range(max_tokens)])
    percents: list[float] = []
    received = 0
    for _token in client.stream("Chapter one.", max_tokens):
        received += 1
        percents.append(100 * received / max_tokens)

    assert len(percents) == max_tokens
    assert all(a < b for a, b in zip(percents, percents[1:], strict=False))
    assert percents[0] == pytest.approx(100 / max_tokens)
    assert percents[-1] == 100


def test_never_yields_more_than_max_tokens(
    server: FakeOpenAIServer, client: OpenAICompatibleClient
) -> None:
    assert list(client.stream("p", max_tokens=3)) == TOKENS[:3]
    # The response of the cut-short stream was closed: the next request works.
    assert list(client.stream("p", max_tokens=100)) == TOKENS
    assert len(server.requests) == 2


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_rate_limit_and_server_errors_are_transient(
    server: FakeOpenAIServer, client: OpenAICompatibleClient, status: int
) -> None:
    server.fail_next(1, status, "The server is overloaded")

    with pytest.raises(TransientLLMError) as caught:
        list(client.stream("p", max_tokens=10))

    error = caught.value
    assert error.retryable is True
    assert error.status_code == status
    assert f"HTTP {status}" in str(error)
    assert "The server is overloaded" in str(error)
    advice = advise(error)
    assert advice.retryable is True
    assert advice.error_type == "TransientLLMError"
    # Transient indeed: trying again works.
    assert list(client.stream("p", max_tokens=10)) == TOKENS


def test_bad_api_key_is_permanent_and_says_check_the_key(
    server: FakeOpenAIServer, client: OpenAICompatibleClient
) -> None:
    server.fail_next(1, 401, "Incorrect API key provided")

    with pytest.raises(PermanentLLMError) as caught:
        list(client.stream("p", max_tokens=10))

    error = caught.value
    assert error.retryable is False
    assert error.status_code == 401
    assert "HTTP 401" in str(error)
    assert "Incorrect API key provided" in str(error)
    assert API_KEY not in str(error)
    assert "API key" in error.retry_suggestion
    advice = advise(error)
    assert advice.retryable is False
    assert "API key" in advice.suggestion


@pytest.mark.parametrize(("status", "mentions"), [(400, "LLM_MODEL"), (403, "LLM_API_KEY")])
def test_other_client_errors_are_permanent(
    server: FakeOpenAIServer, client: OpenAICompatibleClient, status: int, mentions: str
) -> None:
    server.fail_next(1, status, "rejected")

    with pytest.raises(PermanentLLMError) as caught:
        list(client.stream("p", max_tokens=10))

    assert caught.value.status_code == status
    assert mentions in caught.value.retry_suggestion


def test_wrong_base_url_is_permanent_and_says_check_it(server: FakeOpenAIServer) -> None:
    root = server.base_url.removesuffix("/v1")  # forgot the /v1
    with OpenAICompatibleClient(root, API_KEY, MODEL, timeout=5.0) as llm:
        with pytest.raises(PermanentLLMError) as caught:
            list(llm.stream("p", max_tokens=10))

    assert caught.value.status_code == 404
    assert "LLM_BASE_URL" in caught.value.retry_suggestion


def test_connection_refused_is_transient(server: FakeOpenAIServer) -> None:
    base_url = server.base_url
    server.stop()
    with OpenAICompatibleClient(base_url, API_KEY, MODEL, timeout=5.0) as llm:
        with pytest.raises(TransientLLMError) as caught:
            list(llm.stream("p", max_tokens=10))

    assert caught.value.retryable is True
    assert caught.value.status_code is None
    assert "ConnectError" in str(caught.value)
    assert advise(caught.value).retryable is True


def test_silent_server_times_out_as_transient(server: FakeOpenAIServer) -> None:
    server.delay(0.6)
    with OpenAICompatibleClient(server.base_url, API_KEY, MODEL, timeout=0.2) as llm:
        with pytest.raises(TransientLLMError, match="timed out"):
            list(llm.stream("p", max_tokens=10))


def test_stream_cut_short_is_transient_after_the_tokens_it_got(
    server: FakeOpenAIServer, client: OpenAICompatibleClient
) -> None:
    server.cut_after(4)
    received: list[str] = []

    with pytest.raises(TransientLLMError):
        for token in client.stream("p", max_tokens=50):
            received.append(token)

    assert received == TOKENS[:4]


def test_errors_keep_their_advice_through_pickling(
    server: FakeOpenAIServer, client: OpenAICompatibleClient
) -> None:
    server.fail_next(1, 401, "bad key")
    with pytest.raises(LLMError) as caught:
        list(client.stream("p", max_tokens=10))

    copy = pickle.loads(pickle.dumps(caught.value))

    assert type(copy) is PermanentLLMError
    assert str(copy) == str(caught.value)
    assert copy.status_code == 401
    assert copy.retry_suggestion == caught.value.retry_suggestion


def test_factory_builds_the_configured_client(server: FakeOpenAIServer) -> None:
    local = make_llm_client(WorkerSettings(llm="local", local_tokens_per_second=1000))
    assert isinstance(local, LocalGenerator)

    with pytest.raises(ValueError, match="LLM_BASE_URL"):
        make_llm_client(WorkerSettings(llm="openai", llm_base_url=""))

    remote = make_llm_client(
        WorkerSettings(
            llm="openai", llm_base_url=server.base_url, llm_api_key=API_KEY, llm_model=MODEL
        )
    )
    assert isinstance(remote, OpenAICompatibleClient)
    try:
        assert list(remote.stream("p", max_tokens=50)) == TOKENS
    finally:
        remote.close()
    assert server.requests[-1].body["model"] == MODEL
