"""Issue 4: the novels endpoints validate input and never reveal another user's novel."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from progress.redis_server import RedisServer
from tests.servers import ApiServer
from workers.migrate import upgrade

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    database = f"sqlite:///{Path(tmp_path_factory.mktemp('api-db')) / 'novels.db'}"
    upgrade(database)
    with ApiServer(
        f"{redis_server.url}/0", DATABASE_URL=database, WORKER_BROKER_DB="7", WORKER_RESULT_DB="8"
    ) as server:
        yield server


def auth(api: ApiServer, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.jwt(user)}"}


def test_start_list_and_read_a_novel(api: ApiServer, user_id: str) -> None:
    body = {"title": "Tide", "premise": "A storm", "chapter_count": 2, "members": ["friend-1"]}
    started = httpx.post(f"{api.url}/api/v1/novels", json=body, headers=auth(api, user_id))
    assert started.status_code == 202
    novel_id = started.json()["novel_id"]
    assert started.json()["task_id"]

    mine = httpx.get(f"{api.url}/api/v1/novels", headers=auth(api, user_id)).json()
    assert [n["id"] for n in mine] == [novel_id]
    member = auth(api, "friend-1")
    # an invited member reads the novel once they accepted
    invited = httpx.get(f"{api.url}/api/v1/novels/{novel_id}", headers=member)
    assert invited.status_code == 404
    accepted = httpx.post(f"{api.url}/api/v1/novels/{novel_id}/membership", headers=member)
    assert accepted.json() == {"novel_id": novel_id, "status": "accepted"}
    member_view = httpx.get(f"{api.url}/api/v1/novels/{novel_id}", headers=member)
    assert member_view.status_code == 200
    assert [c["number"] for c in member_view.json()["chapters"]] == [1, 2]


def test_another_users_novel_is_404(api: ApiServer, user_id: str) -> None:
    body = {"title": "Private", "premise": "Mine", "chapter_count": 1}
    novel_id = httpx.post(f"{api.url}/api/v1/novels", json=body, headers=auth(api, user_id)).json()[
        "novel_id"
    ]
    stranger = auth(api, f"{user_id}-stranger")

    for response in (
        httpx.get(f"{api.url}/api/v1/novels/{novel_id}", headers=stranger),
        httpx.post(
            f"{api.url}/api/v1/novels/{novel_id}/chapters/1/revise", json={}, headers=stranger
        ),
        httpx.get(f"{api.url}/api/v1/novels/no-such-novel", headers=stranger),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "novel_not_found"
    cancel = httpx.post(f"{api.url}/api/v1/tasks/not-mine/cancel", headers=stranger)
    assert (cancel.status_code, cancel.json()["error"]["code"]) == (404, "task_not_found")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"premise": "x", "chapter_count": 1}, "title"),
        ({"title": "t", "premise": "x", "chapter_count": 0}, "chapter_count"),
        ({"title": "t", "premise": "", "chapter_count": 1}, "premise"),
        ({"title": "t", "premise": "x", "chapter_count": 1, "members": ["bad id"]}, "members.0"),
    ],
)
def test_invalid_requests_are_422_naming_the_field(
    api: ApiServer, user_id: str, body: dict, field: str
) -> None:
    response = httpx.post(f"{api.url}/api/v1/novels", json=body, headers=auth(api, user_id))
    assert response.status_code == 422
    assert field in response.json()["error"]["fields"]
