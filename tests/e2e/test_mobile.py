"""Issue 19 item 7: a phone (Chromium with a phone's viewport, touch and mobile user agent)
going offline and online and being put in the background, each state shown on the status bar,
no progress lost; and the connection status component's states against committed reference
images (tolerance in ``tests/e2e/visual.py``: at most 0.1% of the pixels may differ by more
than 48 of 255 in a channel)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import orjson
import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from progress.keys import user_stream
from progress.redis_store import RedisEventStore, connect
from tests.e2e.conftest import screenshot
from tests.e2e.test_admin import sse_restored  # noqa: F401 (a fixture)
from tests.e2e.test_browser import (
    CHAPTERS,
    expect_novel_done,
    in_order,
    novel_events,
    received,
    status,
    wait_for,
)
from tests.e2e.visual import expect_like_reference
from tests.servers import ApiServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150), pytest.mark.usefixtures("worker")]

PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
    "user_agent": (
        "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0 Mobile Safari/537.36"
    ),
}
# The realtime client closes the stream once every tab has been hidden this long.
HIDDEN_CLOSE = "03:05"


@pytest.fixture
def phone(browser: Browser) -> Iterator[BrowserContext]:
    """A phone's browser profile whose clock the test can move forward (time flows normally
    otherwise)."""
    context = browser.new_context(**PHONE)
    context.set_default_timeout(20_000)
    context.clock.install()
    yield context
    context.close()


@pytest.fixture
def events_store(redis_url: str) -> Iterator[RedisEventStore]:
    client = connect(redis_url)
    yield RedisEventStore(client)
    client.close()


def set_visible(page: Page, visible: bool) -> None:
    """What the browser does when the tab goes to the background or comes back: the page's
    visibility changes and ``visibilitychange`` fires (headless Chromium never hides a tab on
    its own)."""
    page.evaluate(
        """(visible) => {
          const state = visible ? "visible" : "hidden";
          const define = (name, value) =>
            Object.defineProperty(document, name, { configurable: true, get: () => value });
          define("visibilityState", state);
          define("hidden", !visible);
          document.dispatchEvent(new Event("visibilitychange"));
        }""",
        visible,
    )


def status_bar(page: Page) -> Locator:
    return status(page)


def dynamic(page: Page) -> list[Locator]:
    """Parts of the status bar that change from run to run: the retry counter."""
    return [page.get_by_test_id("connection-retries")]


def stored_novel(events_store: RedisEventStore, user: str, novel_id: str) -> list[dict]:
    """The novel's events in the user's stream, in order."""
    events = [
        orjson.loads(e.data) for e in events_store.read_after(user_stream(user), "0-0", 10_000)
    ]
    return [e for e in events if e.get("novel_id") == novel_id]


def fits_the_screen(page: Page) -> bool:
    """Nothing on the page is wider than the phone's screen (no sideways scrolling)."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def tap_sign_in(page: Page, api: ApiServer, user: str) -> None:
    page.goto(api.url)
    page.get_by_label("User id").fill(user)
    page.get_by_role("button", name="Sign in").tap()
    expect(status(page)).to_have_attribute("data-status", "connected")


def test_a_phone_offline_then_in_the_background_loses_no_progress(
    api: ApiServer, phone: BrowserContext, events_store: RedisEventStore, user_id: str
) -> None:
    store = events_store
    page = phone.new_page()
    tap_sign_in(page, api, user_id)
    expect(status(page).get_by_test_id("connection-label")).to_have_text("Live")
    assert fits_the_screen(page)
    expect_like_reference(page, status_bar(page), "status-phone-connected", dynamic(page))
    screenshot(page, "40-phone-connected")

    page.get_by_label("Title").fill("On the bus")
    page.get_by_label("Premise").fill("A commuter writes between two stops")
    page.get_by_label("Chapters").fill(str(CHAPTERS))
    page.get_by_role("button", name="Start writing").tap()
    expect(page).to_have_url(re.compile(r"/novels/[^/]+$"))
    novel_id = page.url.rsplit("/", 1)[1]

    # The tunnel: the whole novel is written while the phone is offline.
    phone.set_offline(True)
    expect(page.get_by_test_id("connection-label")).to_have_text("Offline")
    expect(status(page)).to_contain_text("You are offline")
    expect_like_reference(page, status_bar(page), "status-phone-offline", dynamic(page))
    screenshot(page, "41-phone-offline")
    wait_for(
        lambda: any(e.get("new_status") == "done" for e in stored_novel(store, user_id, novel_id)),
        "the novel to be written while offline",
        timeout=60,
    )
    phone.set_offline(False)
    expect(status(page)).to_have_attribute("data-status", "connected")
    expect_novel_done(page)
    wait_for(
        lambda: in_order(novel_events(store, user_id, novel_id), received(page)),
        "every event of the novel, once and in order, after coming back online",
    )
    assert fits_the_screen(page)
    screenshot(page, "42-phone-back-online-novel-done")

    # The background: the stream closes after a while hidden; a revision runs meanwhile.
    set_visible(page, False)
    phone.clock.fast_forward(HIDDEN_CLOSE)
    expect(status(page)).to_have_attribute("data-status", "disconnected")
    expect(status(page)).to_contain_text("Paused while the page is in the background")
    expect_like_reference(page, status_bar(page), "status-phone-hidden", dynamic(page))
    assert fits_the_screen(page)
    screenshot(page, "43-phone-hidden")
    before = len(stored_novel(store, user_id, novel_id))
    revised = httpx.post(
        f"{api.url}/api/v1/novels/{novel_id}/chapters/1/revise",
        json={"instructions": ""},
        headers={"Authorization": f"Bearer {api.jwt(user_id)}"},
    )
    revised.raise_for_status()
    task_id = revised.json()["task_id"]
    wait_for(
        lambda: any(
            e["type"] == "task.progress-completed" and e.get("task_id") == task_id
            for e in stored_novel(store, user_id, novel_id)
        ),
        "the revision to finish while the page is hidden",
        timeout=30,
    )
    assert len(stored_novel(store, user_id, novel_id)) > before
    set_visible(page, True)
    expect(status(page)).to_have_attribute("data-status", "connected")
    wait_for(
        lambda: in_order(novel_events(store, user_id, novel_id), received(page)),
        "every event of the revision, once and in order, after the page is shown again",
    )
    expect(page.get_by_test_id("unread-count")).not_to_have_text("0")
    screenshot(page, "44-phone-shown-again")


@pytest.mark.usefixtures("sse_restored")
def test_the_status_bar_looks_as_committed_in_each_state(
    api: ApiServer, page: Page, user_id: str
) -> None:
    page.goto(api.url)
    page.get_by_label("User id").fill(user_id)
    page.get_by_role("button", name="Sign in").click()
    bar = status_bar(page)
    expect(bar).to_have_attribute("data-status", "connected")
    expect_like_reference(page, bar, "status-connected", dynamic(page))

    admin = {"Authorization": f"Bearer {api.jwt('ops-admin', roles=('admin',))}"}
    httpx.put(
        f"{api.url}/api/v1/realtime/config", json={"mode": "polling", "percent": 100}, headers=admin
    ).raise_for_status()
    expect(bar).to_have_attribute("data-status", "polling", timeout=10_000)
    expect_like_reference(page, bar, "status-polling-server", dynamic(page))
    httpx.put(
        f"{api.url}/api/v1/realtime/config", json={"mode": "sse", "percent": 100}, headers=admin
    ).raise_for_status()
    expect(bar).to_have_attribute("data-status", "connected", timeout=15_000)

    api.stop()
    try:
        expect(bar).to_have_attribute("data-status", "reconnecting")
        # attempt number and countdown move: the dot, the layout and the button are compared
        label, detail = page.get_by_test_id("connection-label"), bar.locator(".connection-detail")
        expect_like_reference(page, bar, "status-reconnecting", [*dynamic(page), label, detail])
    finally:
        api.start()
    expect(bar).to_have_attribute("data-status", "connected", timeout=20_000)
