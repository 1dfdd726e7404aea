"""Issue 5 end to end: a writer in a real browser sees a novel written live, through an API
restart, in polling mode, and with two tabs sharing one connection."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import httpx
import orjson
import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect

from progress.keys import user_stream
from progress.redis_store import RedisEventStore, connect
from tests.e2e.conftest import FLOWER_URL, screenshot
from tests.servers import ApiServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150), pytest.mark.usefixtures("worker")]

CHAPTERS = 3


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisEventStore]:
    client = connect(redis_url)
    yield RedisEventStore(client)
    client.close()


def status(page: Page) -> Locator:
    return page.get_by_test_id("connection-status")


def sign_in(page: Page, api: ApiServer, user: str) -> None:
    page.goto(api.url)
    page.get_by_label("User id").fill(user)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="New novel")).to_be_visible()


def start_novel(page: Page, title: str) -> str:
    """Fill the form; return the novel id from the page the app opens."""
    page.get_by_label("Title").fill(title)
    page.get_by_label("Premise").fill("A lighthouse keeper and a storm that will not end")
    page.get_by_label("Chapters").fill(str(CHAPTERS))
    page.get_by_role("button", name="Start writing").click()
    expect(page).to_have_url(re.compile(r"/novels/[^/]+$"))
    return page.url.rsplit("/", 1)[1]


def expect_novel_done(page: Page) -> None:
    """Every bar at 100%, every chapter written, the completion toast: without a reload."""
    expect(page.get_by_test_id("novel-status")).to_have_text("done", timeout=60_000)
    expect(page.get_by_test_id("chapters-written")).to_have_text(
        f"{CHAPTERS} of {CHAPTERS} chapters written"
    )
    expect(page.get_by_test_id("toast").filter(has_text="is complete")).to_be_visible()
    bars = page.get_by_role("progressbar")
    # the overall bar, the workflow, its outline, one task per chapter, the review
    expect(bars).to_have_count(1 + 1 + 1 + CHAPTERS + 1)
    for index in range(bars.count()):
        expect(bars.nth(index)).to_have_attribute("aria-valuenow", "100")


def connections_of(store: RedisEventStore, user: str) -> int:
    return int(store.client.zcard(f"rt:{{u:{user}}}:conns"))


def novel_events(
    store: RedisEventStore, user: str, novel_id: str, skip: tuple[str, ...] = ()
) -> list[str]:
    """Ids of the stored events of one novel (but those of the types in ``skip``), in stream
    order."""
    stored = [orjson.loads(e.data) for e in store.read_after(user_stream(user), "0-0", 10_000)]
    return [
        e["event_id"] for e in stored if e.get("novel_id") == novel_id and e["type"] not in skip
    ]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def expect_every_event(
    page: Page, store: RedisEventStore, user: str, novel_id: str, skip: tuple[str, ...] = ()
) -> list[str]:
    """What the page received, once it holds every stored event of the novel (but ``skip``'s)
    in stream order; each at most once. The workflow's final progress is stored up to a second
    after the novel reads done, so this waits for it."""
    wait_for(
        lambda: in_order(novel_events(store, user, novel_id, skip), received(page)),
        "every stored event of the novel, in order",
        timeout=15,
    )
    got = received(page)
    assert len(got) == len(set(got)), "an event was shown twice"
    return got


def in_order(stored: list[str], got: list[str]) -> bool:
    """The page received every stored event, once, in stream order."""
    wanted = set(stored)
    return [event_id for event_id in got if event_id in wanted] == stored


def received(page: Page) -> list[str]:
    return list(page.evaluate("window.__realtimeReceived()"))


def test_a_novel_is_written_live_and_two_tabs_share_one_connection(
    api: ApiServer, context: BrowserContext, page: Page, store: RedisEventStore, user_id: str
) -> None:
    sign_in(page, api, user_id)
    expect(status(page)).to_have_attribute("data-status", "connected")
    screenshot(page, "01-signed-in-connected")

    second = context.new_page()
    second.goto(api.url)
    expect(status(second)).to_have_attribute("data-status", "connected")
    expect(status(second)).to_have_attribute("data-role", "follower")
    assert connections_of(store, user_id) == 1

    novel_id = start_novel(page, "The Tide")
    expect(page.get_by_role("progressbar").first).to_be_visible()
    screenshot(page, "02-novel-in-progress")
    expect_novel_done(page)
    screenshot(page, "03-novel-done")
    flower = page.get_by_role("link", name="Flower").first
    expect(flower).to_have_attribute("href", re.compile(rf"^{re.escape(FLOWER_URL)}/task/.+"))

    page.get_by_role("button", name="Revise chapter 2").click()
    revision = page.get_by_role("progressbar", name="Revising chapter 2 progress")
    expect(revision).to_have_attribute("aria-valuenow", "100")
    expect(page.get_by_test_id("toast").filter(has_text="Revise chapter completed")).to_be_visible()
    screenshot(page, "04-chapter-revised")

    expect(second.get_by_test_id("unread-count")).not_to_have_text("0")
    second.get_by_role("link", name="Notifications").click()
    expect(second.get_by_role("region", name="Your novels").get_by_text("Novel created: The Tide"))
    screenshot(second, "05-second-tab-notifications")
    expect_every_event(page, store, user_id, novel_id)
    expect_every_event(second, store, user_id, novel_id)
    assert connections_of(store, user_id) == 1

    context.set_offline(True)
    expect(page.get_by_test_id("connection-label")).to_have_text("Offline")
    expect(page.get_by_test_id("connection-status")).to_contain_text("You are offline")
    screenshot(page, "06-offline")
    context.set_offline(False)
    expect(status(page)).to_have_attribute("data-status", "connected")

    second.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("User id")).to_be_visible()
    wait_for(lambda: connections_of(store, user_id) == 0, "the stream to close on sign-out")


def test_an_api_restart_mid_novel_loses_and_repeats_nothing(
    api: ApiServer, page: Page, store: RedisEventStore, user_id: str
) -> None:
    sign_in(page, api, user_id)
    expect(status(page)).to_have_attribute("data-status", "connected")
    novel_id = start_novel(page, "The Restart")
    expect(page.get_by_role("progressbar").first).to_be_visible()

    api.stop()
    expect(status(page)).to_have_attribute("data-status", "reconnecting")
    expect(page.get_by_test_id("connection-label")).to_contain_text("Reconnecting (attempt")
    screenshot(page, "07-api-down-reconnecting")
    api.start()
    expect(status(page)).to_have_attribute("data-status", "connected", timeout=30_000)
    screenshot(page, "08-api-back-connected")

    expect_novel_done(page)
    screenshot(page, "09-restart-novel-done")
    expect_every_event(page, store, user_id, novel_id)


def test_in_polling_mode_the_same_flow_completes(
    api: ApiServer, page: Page, store: RedisEventStore, user_id: str
) -> None:
    admin = {"Authorization": f"Bearer {api.jwt('ops-admin', roles=('admin',))}"}
    url = f"{api.url}/api/v1/realtime/config"
    httpx.put(url, json={"mode": "polling", "percent": 100}, headers=admin).raise_for_status()
    try:
        sign_in(page, api, user_id)
        expect(status(page)).to_have_attribute("data-status", "polling")
        expect(page.get_by_test_id("connection-label")).to_have_text("Polling")
        screenshot(page, "10-polling")
        novel_id = start_novel(page, "The Poll")
        expect_novel_done(page)
        screenshot(page, "11-polling-novel-done")
        assert connections_of(store, user_id) == 0
        expect_every_event(page, store, user_id, novel_id)

        httpx.put(url, json={"mode": "sse", "percent": 100}, headers=admin).raise_for_status()
        expect(status(page)).to_have_attribute("data-status", "connected", timeout=20_000)
        screenshot(page, "12-back-to-sse")
    finally:
        httpx.put(url, json={"mode": "sse", "percent": 100}, headers=admin).raise_for_status()


def test_a_slow_network_gets_coarser_progress_without_losing_the_stream(
    api: ApiServer, page: Page, store: RedisEventStore, user_id: str
) -> None:
    sign_in(page, api, user_id)
    expect(status(page)).to_have_attribute("data-status", "connected")

    devtools = page.context.new_cdp_session(page)
    devtools.send("Network.enable")
    coarse = "progress_interval_ms=5000"
    with page.expect_request(lambda r: "/events/stream" in r.url and coarse in r.url) as stream:
        devtools.send(
            "Network.emulateNetworkConditions",
            {
                "offline": False,
                "latency": 400,
                "downloadThroughput": 50_000,
                "uploadThroughput": 50_000,
            },
        )
    assert "last_event_id=" in stream.value.url
    expect(status(page)).to_have_attribute("data-status", "connected")
    screenshot(page, "13-slow-network-connected")
    novel_id = start_novel(page, "The Slow Link")
    expect_novel_done(page)
    # Only superseded progress may be left out on a slow link.
    expect_every_event(
        page, store, user_id, novel_id, skip=("task.progress-updated", "workflow.progress")
    )


def test_an_invited_writer_accepts_in_the_browser_and_then_reads_the_novel(
    api: ApiServer, page: Page, user_id: str
) -> None:
    invitee = f"{user_id}-invitee"
    body = {"title": "The Shared Tide", "premise": "Written for two", "chapter_count": 1}
    created = httpx.post(
        f"{api.url}/api/v1/novels",
        json={**body, "members": [invitee]},
        headers={"Authorization": f"Bearer {api.jwt(user_id)}"},
    )
    novel_id = created.json()["novel_id"]
    sign_in(page, api, invitee)
    novels = page.get_by_role("list", name="Novels")
    expect(novels.get_by_role("link", name="The Shared Tide")).to_have_count(0)
    invitation = page.get_by_role("list", name="Invitations").get_by_role("listitem")
    expect(invitation).to_contain_text("The Shared Tide")
    expect(invitation).to_contain_text(f"from {user_id}")
    invitation.get_by_role("button", name="Accept").click()
    expect(page.get_by_role("heading", name="Invitations")).to_have_count(0)
    novels.get_by_role("link", name="The Shared Tide").click()
    expect(page).to_have_url(re.compile(f"/novels/{novel_id}$"))
