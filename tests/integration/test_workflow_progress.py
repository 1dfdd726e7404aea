"""Issue 21: one live progress bar for a whole Celery workflow, through a real worker (threads
pool, real Redis broker and result backend) and the real SSE endpoint."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from celery import Celery, chain, chord, group

import progress
from progress.redis_server import RedisServer
from progress.signals import watch_app
from tests.integration.conftest import MakeWorkerStack
from tests.servers import ApiServer
from tests.sse_client import SseClient, SseEvent
from workers import contracts

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(redis_server: RedisServer) -> Iterator[ApiServer]:
    with ApiServer(f"{redis_server.url}/0") as server:
        yield server


@pytest.fixture
def app(worker: Celery) -> Celery:
    watch_app(worker)
    return worker


@pytest.fixture
def stream(api: ApiServer) -> Iterator[Callable[[str], SseClient]]:
    opened: list[SseClient] = []

    def open_for(user: str, cursor: str | None = None) -> SseClient:
        url = f"{api.url}/api/v1/events/stream?sse_token={api.sse_token(api.jwt(user))}"
        client = SseClient(url, {"Last-Event-ID": cursor} if cursor else {})
        assert client.wait_open() == 200, client.body
        opened.append(client)
        return client

    yield open_for
    for client in opened:
        client.close()


def workflow_events(events: list[SseEvent], workflow_id: str) -> list[dict[str, Any]]:
    found = [e.json for e in events if e.event == "workflow.progress"]
    return [e for e in found if e["workflow_id"] == workflow_id]


def final(workflow_id: str) -> Callable[[list[SseEvent]], bool]:
    def done(events: list[SseEvent]) -> bool:
        return any(e["final"] for e in workflow_events(events, workflow_id))

    return done


def last(client: SseClient, workflow_id: str, timeout: float = 30) -> dict[str, Any]:
    events = client.wait_for(final(workflow_id), timeout)
    return workflow_events(events, workflow_id)[-1]


def run(app: Celery, user: str, canvas: Callable[[Celery], Any]) -> str:
    workflow_id = f"wf-{uuid.uuid4().hex[:10]}"
    with progress.acting_as(user, workflow_id=workflow_id):
        canvas(app).apply_async()
    return workflow_id


def sig(app: Celery, name: str, *args: Any) -> Any:
    return app.signature(name, args=args, immutable=True)


def test_nested_chain_group_chord_counts_every_task_once_with_weights(
    app: Celery, stream: Callable[[str], SseClient], user_id: str
) -> None:
    client = stream(user_id)
    workflow = run(
        app,
        user_id,
        lambda a: chain(
            sig(a, "t.quick"),
            group(sig(a, "t.heavy"), sig(a, "t.quick")),
            chord(group(sig(a, "t.quick") for _ in range(3)), sig(a, "t.heavy")),
        ),
    )
    end = last(client, workflow)
    assert (end["state"], end["total"], end["done"], end["failed"]) == ("completed", 7, 7, 0)
    assert end["percent"] == 100 and end["eta_seconds"] == 0 and end["important"]
    percents = [e["percent"] for e in workflow_events(client.events, workflow)]
    assert percents == sorted(percents)


def test_a_chord_built_by_a_running_task_is_counted_before_the_workflow_ends(
    app: Celery, stream: Callable[[str], SseClient], user_id: str
) -> None:
    client = stream(user_id)
    workflow = run(app, user_id, lambda a: sig(a, "t.builds_chord", 5))
    end = last(client, workflow)
    assert (end["state"], end["total"], end["done"]) == ("completed", 7, 7)
    finals = [e for e in workflow_events(client.events, workflow) if e["final"]]
    assert len(finals) == 1, "the workflow looked finished before its chord was sent"


def test_a_retried_task_is_counted_once(
    app: Celery, stream: Callable[[str], SseClient], user_id: str
) -> None:
    client = stream(user_id)
    workflow = run(app, user_id, lambda a: chain(sig(a, "t.flaky"), sig(a, "t.quick")))
    end = last(client, workflow)
    assert (end["state"], end["total"], end["done"], end["failed"]) == ("completed", 2, 2, 0)


def test_a_failed_task_in_a_chord_ends_the_workflow_failed_with_task_and_reason(
    app: Celery, stream: Callable[[str], SseClient], user_id: str
) -> None:
    client = stream(user_id)
    failing = sig(app, "t.fails_in_chord").freeze().id
    workflow_id = f"wf-{uuid.uuid4().hex[:10]}"
    header = [sig(app, "t.quick"), sig(app, "t.fails_in_chord"), sig(app, "t.quick")]
    header[1].set(task_id=failing)
    with progress.acting_as(user_id, workflow_id=workflow_id):
        chord(group(header), sig(app, "t.quick")).apply_async()
    end = last(client, workflow_id)
    assert end["state"] == "failed"
    assert (end["total"], end["done"], end["failed"]) == (3, 2, 1), "the body never runs"
    assert end["failed_task_id"] == failing
    assert end["failed_reason"] == "ValueError: chapter 2 has no plan"


def test_cancelling_the_whole_workflow_ends_it_cancelled(
    app: Celery, stream: Callable[[str], SseClient], user_id: str
) -> None:
    client = stream(user_id)
    workflow = run(app, user_id, lambda a: group(sig(a, "t.sleeps", 0.5) for _ in range(3)))
    client.wait_for(lambda ev: bool(workflow_events(ev, workflow)), 10)
    progress.cancel_workflow(user_id, workflow)
    end = last(client, workflow)
    assert end["state"] == "cancelled" and end["important"]


def test_a_group_of_two_thousand_tasks_ends_with_exact_counts_and_few_events(
    app: Celery, stream: Callable[[str], SseClient], user_id: str
) -> None:
    client = stream(user_id)
    started = time.monotonic()
    workflow = run(app, user_id, lambda a: group(sig(a, "t.quick") for _ in range(2000)))
    end = last(client, workflow, timeout=120)
    seconds = time.monotonic() - started
    assert (end["state"], end["total"], end["done"], end["failed"]) == ("completed", 2000, 2000, 0)
    received = workflow_events(client.events, workflow)
    # leading edge, one per second at most, the state's change and the final one
    assert 1 <= len(received) <= seconds + 3, (len(received), seconds)


def test_a_reconnect_gets_the_current_totals_at_once(
    app: Celery, api: ApiServer, stream: Callable[[str], SseClient], user_id: str
) -> None:
    first = stream(user_id)
    workflow = run(app, user_id, lambda a: group(sig(a, "t.quick") for _ in range(4)))
    first.wait_for(lambda ev: bool(workflow_events(ev, workflow)), 10)
    cursor = first.last_id
    first.close()
    end = last(stream(user_id, cursor), workflow)  # the rest comes from the cursor
    assert (end["total"], end["done"]) == (4, 4)
    headers = {"Authorization": f"Bearer {api.jwt(user_id)}"}
    snapshot = httpx.get(f"{api.url}/api/v1/workflows/{workflow}", headers=headers).json()
    assert (snapshot["total"], snapshot["done"], snapshot["state"]) == (4, 4, "completed")
    assert snapshot["final"] is True
    missing = httpx.get(f"{api.url}/api/v1/workflows/wf-nobody", headers=headers)
    assert missing.status_code == 404


def test_a_killed_worker_reaches_the_workflow_as_stalled_then_failed(
    worker_stack: MakeWorkerStack, user_id: str
) -> None:
    stack = worker_stack(
        13,
        14,
        WORKER_LOCAL_TOKENS_PER_SECOND="5",
        PROGRESS_HEARTBEAT_SECONDS="3",
        WORKER_WATCHDOG_SECONDS="0.5",
        PROGRESS_WATCHDOG_SECONDS="0.5",
    )
    with stack.worker(concurrency=4) as victim:
        contracts.start_novel(user_id, None, "Doomed", "A crash mid-outline", 3)
        stack.events(user_id, lambda ev: _outline_running(ev), timeout=20)
        victim.stop(signal.SIGKILL)
    stack.worker(concurrency=4, beat=True)

    def lost(events: list[dict[str, Any]]) -> bool:
        return any(e["type"] == "workflow.progress" and e["failed"] >= 1 for e in events)

    found = [e for e in stack.events(user_id, lost, timeout=45) if e["type"] == "workflow.progress"]
    assert any(e["stalled"] >= 1 for e in found), found
    assert found[-1]["failed"] >= 1 and found[-1]["state"] == "failed"


def _outline_running(events: list[dict[str, Any]]) -> bool:
    return any(
        e["type"] == "task.progress-updated" and e.get("stage") == "outlining" for e in events
    )
