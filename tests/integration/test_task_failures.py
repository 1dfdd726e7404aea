"""Issue 4 (R3.4): timeouts and transient LLM errors produce events a writer can act on."""

from __future__ import annotations

import time

import pytest

from tests.fake_openai_server import FakeOpenAIServer
from tests.integration.conftest import MakeWorkerStack, has
from workers import contracts

pytestmark = pytest.mark.integration


def test_a_timeout_fails_with_a_retry_suggestion_and_fails_the_novel(
    worker_stack: MakeWorkerStack, user_id: str
) -> None:
    stack = worker_stack(5, 6, WORKER_TOKENS_PER_CHAPTER="30")
    worker = stack.worker(
        pool="prefork",
        WORKER_SOFT_TIME_LIMIT_SECONDS="1",
        WORKER_LOCAL_TOKENS_PER_SECOND="10",
    )
    novel, _ = contracts.start_novel(user_id, None, "Slow", "A slow story", 4)

    found = stack.events(user_id, has("task.progress-failed"), timeout=40)

    failed = [e for e in found if e["type"] == "task.progress-failed"]
    assert failed, ([e["type"] for e in found], worker.log_text[-3000:])
    # Under prefork Celery's soft limit and the task's own deadline race; either is a timeout.
    assert failed[0]["error_type"] in {"SoftTimeLimitExceeded", "GenerationTimeout"}
    assert failed[0]["retryable"] is True
    assert "Try again" in failed[0]["retry_suggestion"]
    stack.events(user_id, has("workflow.status-changed"), timeout=5)
    deadline = time.monotonic() + 10
    while contracts.get_novel(novel.id, user_id).status != "failed" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert contracts.get_novel(novel.id, user_id).status == "failed"


def done(events: list[dict]) -> bool:
    return any(e["type"] == "workflow.status-changed" and e["new_status"] == "done" for e in events)


def test_a_transient_llm_error_retries_then_succeeds(
    worker_stack: MakeWorkerStack, user_id: str
) -> None:
    stack = worker_stack(5, 6, WORKER_TOKENS_PER_CHAPTER="30")
    with FakeOpenAIServer([f"w{i}" for i in range(200)]) as llm:
        llm.fail_next(1, 503, "overloaded")
        stack.worker(LLM_PROVIDER="openai", LLM_BASE_URL=llm.base_url, LLM_API_KEY="k")
        contracts.start_novel(user_id, None, "Flaky", "A flaky model", 1)
        found = stack.events(user_id, done, timeout=40)
    stages = [e["new_status"] for e in found if e["type"] == "workflow.status-changed"]

    kinds = [e["type"] for e in found]
    assert "task.progress-retrying" in kinds
    retrying = next(e for e in found if e["type"] == "task.progress-retrying")
    assert retrying["error_type"] == "TransientLLMError"
    outline_runs = [
        e["attempt"]
        for e in found
        if e["type"] == "task.progress-started" and e["task_name"] == "workers.generate_outline"
    ]
    assert outline_runs == [1, 2]
    assert "done" in stages
    assert "task.progress-failed" not in kinds
