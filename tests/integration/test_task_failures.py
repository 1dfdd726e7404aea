"""Issue 4 (R3.4): timeouts and transient LLM errors produce events a writer can act on."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

import progress
from progress.keys import user_stream
from progress.redis_server import RedisServer
from progress.redis_store import RedisEventStore, connect
from progress.settings import ProgressSettings
from tests.fake_openai_server import FakeOpenAIServer
from tests.workers import WorkerProcess
from workers import contracts, resources
from workers.migrate import upgrade
from workers.settings import WorkerSettings

pytestmark = pytest.mark.integration

StartWorker = Callable[..., WorkerProcess]


@pytest.fixture
def start_worker(redis_server: RedisServer, tmp_path: Path) -> Iterator[StartWorker]:
    """Start a worker process with extra environment; this process sends tasks to it."""
    database = f"sqlite:///{tmp_path / 'novels.db'}"
    upgrade(database)
    base = {
        "REDIS_URL": f"{redis_server.url}/0",
        "DATABASE_URL": database,
        "WORKER_BROKER_DB": "5",
        "WORKER_RESULT_DB": "6",
        "WORKER_TOKENS_PER_CHAPTER": "30",
    }
    resources.configure(
        WorkerSettings(redis_url=base["REDIS_URL"], database_url=database, broker_db=5, result_db=6)
    )
    progress.configure(ProgressSettings(redis_url=base["REDIS_URL"]))
    started: list[WorkerProcess] = []

    def start(pool: str = "threads", **env: str) -> WorkerProcess:
        worker = WorkerProcess({**base, **env}, pool=pool, concurrency=2).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
    progress.configure(None)
    resources.configure(None)


def events_until(redis_url: str, user: str, kind: str, timeout: float = 40) -> list[dict]:
    store = RedisEventStore(connect(redis_url))
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            found = [orjson.loads(e.data) for e in store.read_after(user_stream(user), "0-0", 1000)]
            if any(e["type"] == kind for e in found):
                return found
            time.sleep(0.1)
        return found
    finally:
        store.close()


def test_a_timeout_fails_with_a_retry_suggestion_and_fails_the_novel(
    start_worker: StartWorker, redis_url: str, user_id: str
) -> None:
    worker = start_worker(
        pool="prefork",
        WORKER_SOFT_TIME_LIMIT_SECONDS="1",
        WORKER_LOCAL_TOKENS_PER_SECOND="10",
    )
    novel, _ = contracts.start_novel(user_id, None, "Slow", "A slow story", 4)

    found = events_until(redis_url, user_id, "task.progress-failed")

    failed = [e for e in found if e["type"] == "task.progress-failed"]
    assert failed, ([e["type"] for e in found], worker.log_text[-3000:])
    assert failed[0]["error_type"] == "GenerationTimeout"
    assert failed[0]["retryable"] is True
    assert "Try again" in failed[0]["retry_suggestion"]
    found = events_until(redis_url, user_id, "workflow.status-changed", timeout=5)
    deadline = time.monotonic() + 10
    while contracts.get_novel(novel.id, user_id).status != "failed" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert contracts.get_novel(novel.id, user_id).status == "failed"


def test_a_transient_llm_error_retries_then_succeeds(
    start_worker: StartWorker, redis_url: str, user_id: str
) -> None:
    with FakeOpenAIServer([f"w{i}" for i in range(200)]) as llm:
        llm.fail_next(1, 503, "overloaded")
        start_worker(LLM_PROVIDER="openai", LLM_BASE_URL=llm.base_url, LLM_API_KEY="k")
        contracts.start_novel(user_id, None, "Flaky", "A flaky model", 1)

        found = events_until(redis_url, user_id, "workflow.status-changed", timeout=1)
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            found = events_until(redis_url, user_id, "task.progress-retrying", timeout=1)
            stages = [e["new_status"] for e in found if e["type"] == "workflow.status-changed"]
            if "done" in stages:
                break
            time.sleep(0.2)

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
