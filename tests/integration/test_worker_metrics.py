"""Issue 7: a real worker process serves its own metrics; emitted and throttled counts move
when a novel is written; the outbox gauge appears once a count source is set."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import progress
from progress.keys import user_stream
from progress.redis_server import RedisServer, free_port
from progress.redis_store import RedisEventStore, connect
from progress.settings import ProgressSettings
from tests.workers import WorkerProcess
from workers import contracts, resources
from workers.metrics import make_registry, set_outbox_pending_source
from workers.migrate import upgrade
from workers.settings import WorkerSettings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def worker_port(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    database = Path(tmp_path_factory.mktemp("db")) / "novels.db"
    upgrade(f"sqlite:///{database}")
    port = free_port()
    env = {
        "REDIS_URL": f"{redis_server.url}/0",
        "DATABASE_URL": f"sqlite:///{database}",
        "WORKER_BROKER_DB": "5",
        "WORKER_RESULT_DB": "6",
        "WORKER_LOCAL_TOKENS_PER_SECOND": "400",
        "WORKER_TOKENS_PER_CHAPTER": "40",
        "WORKER_METRICS_PORT": str(port),
        "WORKER_METRICS_HOST": "127.0.0.1",
    }
    resources.configure(
        WorkerSettings(
            redis_url=env["REDIS_URL"], database_url=env["DATABASE_URL"], broker_db=5, result_db=6
        )
    )
    progress.configure(ProgressSettings(redis_url=env["REDIS_URL"]))
    with WorkerProcess(env):
        yield port
    progress.configure(None)
    resources.configure(None)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_worker_exports_what_it_emitted_and_throttled(
    worker_port: int, redis_url: str, user_id: str
) -> None:
    url = f"http://127.0.0.1:{worker_port}/metrics"
    before = samples(httpx.get(url, timeout=5).text)
    contracts.start_novel(user_id, None, "Metered", "A story that is counted", 1)
    store = RedisEventStore(connect(redis_url))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        kinds = [
            orjson.loads(e.data).get("new_status")
            for e in store.read_after(user_stream(user_id), "0-0", 10_000)
        ]
        if "done" in kinds:
            break
        time.sleep(0.2)
    store.client.close()
    assert "done" in kinds
    after = samples(httpx.get(url, timeout=5).text)

    def moved(name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return after.get(key, 0) - before.get(key, 0)

    # create, outline, one chapter, review: four tasks started and completed
    assert moved("progress_events_emitted_total", type="task.progress-started") == 4
    assert moved("progress_events_emitted_total", type="task.progress-completed") == 4
    assert moved("progress_events_emitted_total", type="task.progress-updated") >= 1
    assert moved("progress_events_emitted_total", type="content.chapter-updated") == 1
    assert moved("progress_updates_throttled_total") >= 1  # 40 tokens in 0.1 s: held
    assert after[("progress_events_dropped_total", frozenset())] == 0
    # every important event of the novel was pushed: nothing waits in the outbox table
    assert after[("progress_outbox_pending", frozenset())] == 0


def test_the_outbox_gauge_reads_its_source() -> None:
    # An in-process worker of another test may have set the process-wide source already.
    set_outbox_pending_source(None)
    registry = make_registry()
    assert b"progress_outbox_pending" not in generate_latest(registry)
    set_outbox_pending_source(lambda: 42)
    try:
        assert b"progress_outbox_pending 42.0" in generate_latest(registry)
        set_outbox_pending_source(lambda: 1 // 0)  # a failing source leaves the scrape intact
        text = generate_latest(registry)
        assert b"progress_outbox_pending" not in text and b"progress_events_emitted" in text
    finally:
        set_outbox_pending_source(None)


def test_the_worker_exports_its_process_cpu_and_memory(worker_port: int) -> None:
    scraped = samples(httpx.get(f"http://127.0.0.1:{worker_port}/metrics", timeout=5).text)
    assert scraped[("process_resident_memory_bytes", frozenset())] > 10_000_000
    assert scraped[("process_cpu_seconds_total", frozenset())] > 0
    assert scraped[("process_open_fds", frozenset())] > 0
