"""Issue 4 (R3, R4): the creation workflow on a real worker, real Redis, a real database."""

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
from tests.workers import WorkerProcess
from workers import contracts, resources
from workers.migrate import upgrade
from workers.settings import WorkerSettings

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("novel_worker")]

Events = Callable[..., list[dict]]


@pytest.fixture(scope="module")
def novel_worker(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """A real ``celery worker`` process running the creation tasks; this process only sends."""
    database = Path(tmp_path_factory.mktemp("db")) / "novels.db"
    upgrade(f"sqlite:///{database}")
    env = {
        "REDIS_URL": f"{redis_server.url}/0",
        "DATABASE_URL": f"sqlite:///{database}",
        "WORKER_BROKER_DB": "3",
        "WORKER_RESULT_DB": "4",
        "WORKER_LOCAL_TOKENS_PER_SECOND": "150",
        "WORKER_TOKENS_PER_CHAPTER": "40",
        "PROGRESS_HEARTBEAT_SECONDS": "1",
    }
    resources.configure(
        WorkerSettings(
            redis_url=env["REDIS_URL"], database_url=env["DATABASE_URL"], broker_db=3, result_db=4
        )
    )
    progress.configure(ProgressSettings(redis_url=env["REDIS_URL"], heartbeat_seconds=1))
    with WorkerProcess(env) as worker:
        yield worker
    progress.configure(None)
    resources.configure(None)


@pytest.fixture
def events(redis_url: str) -> Iterator[Events]:
    store = RedisEventStore(connect(redis_url))

    def read(user: str, until: Callable[[list[dict]], bool], timeout: float = 30) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            found = [
                orjson.loads(e.data) for e in store.read_after(user_stream(user), "0-0", 10_000)
            ]
            if until(found) or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    yield read
    store.client.close()


def of_type(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["type"] == kind]


def stages(events: list[dict]) -> list[str]:
    return [e["new_status"] for e in events if e["type"] == "workflow.status-changed"]


def test_create_novel_emits_workflow_and_content_events_to_readers_only(
    events: Events, user_id: str
) -> None:
    member, stranger = f"{user_id}-member", f"{user_id}-stranger"
    novel, task_id = contracts.start_novel(
        user_id, "s1", "The Tide", "A keeper and a storm", 3, [member]
    )
    contracts.accept_invitation(novel.id, member)  # members are invited until they accept

    # review_novel's completed event is stored after its "done" stage (and, being important,
    # after an SQL commit): wait for both.
    owner_events = events(
        user_id,
        lambda ev: (
            ("done" in stages(ev) and len(of_type(ev, "task.progress-completed")) >= 6)
            or "failed" in stages(ev)
        ),
    )

    assert stages(owner_events) == ["outlining", "drafting", "reviewing", "done"]
    kinds = [e["type"] for e in owner_events]
    assert kinds.index("content.novel-created") < kinds.index("workflow.status-changed")
    chapters = [
        c for e in owner_events if e["type"] == "content.chapter-updated" for c in e["chapters"]
    ]
    assert sorted(c["number"] for c in chapters) == [1, 2, 3]
    assert all(c["summary"] for c in chapters)
    drafting_at = kinds.index("content.chapter-updated")
    assert stages(owner_events[:drafting_at]) == ["outlining", "drafting"]
    completed = [e for e in owner_events if e["type"] == "task.progress-completed"]
    assert len(completed) == 1 + 1 + 3 + 1  # create, outline, chapters, review
    assert task_id in {e["task_id"] for e in completed}

    member_events = events(member, lambda ev: "done" in stages(ev))
    # The invitation's novel-created went to the owner alone; what follows the accept reaches
    # the member (the workflow may have moved on before the accept committed).
    assert {e["type"] for e in member_events} == {
        "content.chapter-updated",
        "workflow.status-changed",
    }
    assert events(stranger, lambda _: False, timeout=0.5) == []
    stored = contracts.get_novel(novel.id, member)
    assert stored.status == "done"
    assert all(c.text and c.summary for c in stored.chapters)


def test_chapter_progress_comes_from_tokens_and_reaches_100(events: Events, user_id: str) -> None:
    contracts.start_novel(user_id, None, "Short", "A small story", 1)
    found = events(user_id, lambda ev: "done" in stages(ev))
    chapter_tasks = {
        e["task_id"] for e in found if e.get("task_name") == "workers.generate_chapter"
    }
    (chapter_task,) = chapter_tasks
    percents = [
        e["percent"]
        for e in found
        if e["type"] == "task.progress-updated" and e["task_id"] == chapter_task
    ]
    assert percents == sorted(percents)
    assert percents[-1] == 100


def test_cancelling_the_workflow_cancels_its_steps_and_the_novel(
    events: Events, user_id: str
) -> None:
    novel, task_id = contracts.start_novel(user_id, None, "Long", "A long story", 8)
    events(user_id, lambda ev: "outlining" in stages(ev))
    contracts.cancel_task(user_id, task_id)
    found = events(user_id, lambda ev: any(e["type"] == "task.progress-cancelled" for e in ev))
    assert "cancelled" in stages(found)
    assert any(e["type"] == "task.progress-cancelled" for e in found)
    assert not any(e["type"] == "task.progress-failed" for e in found)
    assert contracts.get_novel(novel.id, user_id).status == "cancelled"
    overall = events(user_id, lambda ev: bool(of_type(ev, "workflow.progress")))
    assert of_type(overall, "workflow.progress")[-1]["state"] == "cancelled"


def test_cancelling_someone_elses_task_is_not_found(events: Events, user_id: str) -> None:
    _, task_id = contracts.start_novel(user_id, None, "Mine", "Mine only", 1)
    with pytest.raises(contracts.TaskNotFound):
        contracts.cancel_task(f"{user_id}-thief", task_id)
    assert "done" in stages(events(user_id, lambda ev: "done" in stages(ev)))
