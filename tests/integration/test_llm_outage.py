"""Issue 19 (4), R4.7: when the LLM provider is down for many tasks at once, each affected
writer gets ONE ``system.error`` with a suggested action, and ONE ``system.notification`` when
it works again, however many worker processes saw the failures; other writers get nothing.

Real API, two real worker processes, the local fake LLM server switched off and on, events
read on the SSE endpoint.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from progress.redis_server import RedisServer
from tests.fake_openai_server import FakeOpenAIServer
from tests.integration.conftest import api_and_workers
from tests.servers import ApiServer
from tests.sse_client import SseClient, SseEvent

pytestmark = pytest.mark.integration

BROKER_DB, RESULT_DB = 9, 10
ENDED = {"done", "failed", "cancelled"}


@pytest.fixture
def llm() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer([f"w{i}" for i in range(40)]) as server:
        yield server


@pytest.fixture
def api(redis_server: RedisServer, tmp_path: Path, llm: FakeOpenAIServer) -> Iterator[ApiServer]:
    """The API and two worker processes (2 threads each) on one database, the LLM the fake."""
    env = {
        "WORKER_TOKENS_PER_CHAPTER": "20",
        "LLM_PROVIDER": "openai",
        "LLM_BASE_URL": llm.base_url,
        "LLM_API_KEY": "k",
        "WORKER_OUTAGE_FAILURE_THRESHOLD": "3",
        "WORKER_OUTAGE_WINDOW_SECONDS": "60",
        # Recovery once no task failed for a second and a task succeeded since.
        "WORKER_OUTAGE_RECOVERY_SECONDS": "1",
    }
    with api_and_workers(
        redis_server, tmp_path / "novels.db", BROKER_DB, RESULT_DB, env, workers=2
    ) as server:
        yield server


def auth(api: ApiServer, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.jwt(user)}"}


def start_novel(api: ApiServer, user: str) -> str:
    body = {"title": "Storm", "premise": "The provider goes dark", "chapter_count": 1}
    created = httpx.post(f"{api.url}/api/v1/novels", json=body, headers=auth(api, user))
    assert created.status_code == 202, created.text
    novel_id: str = created.json()["novel_id"]
    return novel_id


def novel_status(api: ApiServer, user: str, novel_id: str) -> str:
    response = httpx.get(f"{api.url}/api/v1/novels/{novel_id}", headers=auth(api, user))
    status: str = response.json()["status"]
    return status


def system(events: list[SseEvent]) -> list[tuple[str, dict]]:
    return [(e.event, e.json) for e in events if e.event.startswith("system.")]


def test_one_error_and_one_recovery_notice_per_affected_writer(
    api: ApiServer, llm: FakeOpenAIServer, user_id: str
) -> None:
    writers = [f"{user_id}-a", f"{user_id}-b"]
    bystander = f"{user_id}-c"
    streams = {
        who: SseClient(f"{api.url}/api/v1/events/stream?sse_token={api.sse_token(api.jwt(who))}")
        for who in [*writers, bystander]
    }
    try:
        for stream in streams.values():
            stream.wait_for(lambda ev: any(e.event == "connection.established" for e in ev))
        llm.stop()  # the provider is unreachable: connections refused
        novels = {who: [start_novel(api, who), start_novel(api, who)] for who in writers}
        for who in writers:
            streams[who].wait_for(lambda ev: any(e.event == "system.error" for e in ev), 40)

        llm.start()  # back on the same address
        # A new task's success shows the recovery even if every earlier one gave up.
        novels[writers[0]].append(start_novel(api, writers[0]))
        for who in writers:
            streams[who].wait_for(lambda ev: any(e.event == "system.notification" for e in ev), 40)
        deadline = time.monotonic() + 60
        for who, ids in novels.items():
            for novel_id in ids:
                while novel_status(api, who, novel_id) not in ENDED:
                    assert time.monotonic() < deadline, (who, novel_id)
                    time.sleep(0.2)
        assert novel_status(api, writers[0], novels[writers[0]][-1]) == "done"
    finally:
        for stream in streams.values():
            stream.close()

    for who in writers:
        notices = system(streams[who].events)
        assert [kind for kind, _ in notices] == ["system.error", "system.notification"], notices
        error, recovery = notices[0][1], notices[1][1]
        assert error["severity"] == "high" and error["suggested_action"]
        assert "text generat" in error["affected_scope"]
        assert recovery["level"] == "info" and recovery["suggested_action"]
        # Their tasks' own failures still reach them, one by one.
        assert any(e.event == "task.progress-retrying" for e in streams[who].events)
    assert system(streams[bystander].events) == []
    print(  # noqa: T201 - the counts, shown with -s
        "\n"
        + ", ".join(
            f"{who}: {len(system(streams[who].events))} system events"
            for who in [*writers, bystander]
        )
    )


def test_a_batch_revision_retried_after_a_provider_error_revises_each_chapter_once(
    api: ApiServer, llm: FakeOpenAIServer, user_id: str
) -> None:
    headers = auth(api, user_id)
    body = {"title": "Storm", "premise": "The provider stumbles", "chapter_count": 3}
    novel_id = httpx.post(f"{api.url}/api/v1/novels", json=body, headers=headers).json()["novel_id"]
    deadline = time.monotonic() + 60
    while novel_status(api, user_id, novel_id) != "done":
        assert time.monotonic() < deadline, novel_status(api, user_id, novel_id)
        time.sleep(0.2)
    before = len(llm.requests)
    llm.delay(0.5)  # each answer waits: the second chapter's request comes after fail_next
    revisions = {"chapters": [1, 2, 3], "instructions": "darker"}
    started = httpx.post(
        f"{api.url}/api/v1/novels/{novel_id}/revisions", json=revisions, headers=headers
    )
    assert started.status_code == 202, started.text
    while len(llm.requests) == before:
        assert time.monotonic() < deadline + 30, "the first chapter was never asked for"
        time.sleep(0.02)
    llm.fail_next(1, 503)  # the second chapter's request: the task retries
    task = f"{api.url}/api/v1/tasks/{started.json()['task_id']}"
    while (status := httpx.get(task, headers=headers).json()["status"]) != "completed":
        assert status != "failed" and time.monotonic() < deadline + 60, status
        time.sleep(0.2)

    asked = [re.search(r"Revise (.+?) \(darker\)", str(r.body)) for r in llm.requests[before:]]
    chapters = [match[1] for match in asked if match]
    assert len(chapters) == 4, chapters  # 1, 2 (refused), 2 again, 3
    assert chapters[1] == chapters[2] and len(set(chapters)) == 3, chapters
