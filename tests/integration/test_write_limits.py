"""Issue 15 (4): a user's writes are budgeted and their unfinished novels capped. A burst of
novel creations is refused 429 (Retry-After) once the write budget is spent, and what it
queues and stores in Redis stops growing with it; a novel that would pass the cap on chapters
still being written is refused with its own code, and nothing of it is queued."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import redis

from progress.keys import user_stream
from progress.redis_server import RedisServer
from tests.servers import ApiServer
from workers.migrate import upgrade

pytestmark = pytest.mark.integration

BROKER_DB = 15
BURST, CAP = 10, 12


@pytest.fixture(scope="module")
def api(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """No worker runs: every created novel stays queued (unfinished)."""
    database = f"sqlite:///{Path(tmp_path_factory.mktemp('limits')) / 'novels.db'}"
    upgrade(database)
    with ApiServer(
        f"{redis_server.url}/0",
        DATABASE_URL=database,
        WORKER_BROKER_DB=str(BROKER_DB),
        WORKER_RESULT_DB=str(BROKER_DB - 1),
        SSE_RATE_WRITE_USER_BURST=str(BURST),
        SSE_RATE_WRITE_USER_PER_SECOND="0.2",
        SSE_MAX_ACTIVE_CHAPTERS_PER_USER=str(CAP),
    ) as server:
        yield server


def create(api: ApiServer, jwt: str, chapters: int = 1) -> httpx.Response:
    body = {"title": "Burst", "premise": "again", "chapter_count": chapters}
    return httpx.post(
        f"{api.url}/api/v1/novels", json=body, headers={"Authorization": f"Bearer {jwt}"}
    )


def queued(redis_server: RedisServer) -> int:
    client = redis.Redis.from_url(f"{redis_server.url}/{BROKER_DB}")
    try:
        return int(client.llen("celery"))
    finally:
        client.close()


def test_a_burst_of_creations_is_refused_after_the_write_budget(
    api: ApiServer, redis_server: RedisServer, user_id: str
) -> None:
    jwt = api.jwt(user_id)
    events = redis.Redis.from_url(f"{redis_server.url}/0")
    queued_before = queued(redis_server)
    started = time.monotonic()
    responses = [create(api, jwt) for _ in range(60)]
    elapsed = time.monotonic() - started

    statuses = [r.status_code for r in responses]
    accepted = statuses.count(202)
    assert BURST <= accepted <= BURST + 1 + int(elapsed * 0.2), statuses
    assert statuses[:BURST] == [202] * BURST
    refused = [r for r in responses if r.status_code == 429]
    assert len(refused) == len(responses) - accepted
    assert {r.json()["error"]["code"] for r in refused} == {"rate_limited"}
    assert all(int(r.headers["retry-after"]) >= 1 for r in refused)
    # Only the admitted creations queued work or stored events.
    assert queued(redis_server) - queued_before == accepted
    # Each admitted novel stores its content.novel-created (and its workflow's first progress, sent
    # from a queue a moment later); nothing of a refused one is stored.
    admitted = {r.json()["novel_id"] for r in responses if r.status_code == 202}
    stored = [
        orjson.loads(fields[b"e"])
        for _, fields in events.xrange(f"rt:{{{user_stream(user_id)}}}:events")
    ]
    created = [e["novel_id"] for e in stored if e["type"] == "content.novel-created"]
    assert sorted(created) == sorted(admitted)
    assert {e["novel_id"] for e in stored} <= admitted
    # The budget is one small key that expires by itself.
    bucket = f"rt:{{{user_stream(user_id)}}}:rl:write"
    assert 0 < events.pttl(bucket) <= (BURST / 0.2 + 1) * 1000
    events.close()
    # Another user's budget is their own.
    assert create(api, api.jwt(f"{user_id}-other")).status_code == 202


def test_novels_beyond_the_active_chapter_cap_are_refused(
    api: ApiServer, redis_server: RedisServer, user_id: str
) -> None:
    jwt = api.jwt(user_id)
    assert create(api, jwt, chapters=8).status_code == 202
    queued_before = queued(redis_server)
    refused = create(api, jwt, chapters=5)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_active_chapters"
    assert "8 chapters" in refused.json()["error"]["message"]
    assert int(refused.headers["retry-after"]) >= 1
    assert queued(redis_server) == queued_before
    assert create(api, jwt, chapters=4).status_code == 202  # exactly the cap
    assert create(api, jwt, chapters=1).status_code == 429
    mine = httpx.get(f"{api.url}/api/v1/novels", headers={"Authorization": f"Bearer {jwt}"})
    assert sorted(n["chapter_count"] for n in mine.json()) == [4, 8]
