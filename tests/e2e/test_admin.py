"""Issue 7 end to end: an admin watches the operations report, moves writers to polling and
back, and sends system notifications that a writer's preferences filter at the server."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.conftest import screenshot
from tests.e2e.test_browser import status
from tests.servers import ApiServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90), pytest.mark.usefixtures("worker")]

# SSE_HEARTBEAT_SECONDS and SSE_POLL_INTERVAL_SECONDS of the `api` fixture.
HEARTBEAT_MS = 5_000
POLL_INTERVAL_MS = 5_000


@pytest.fixture
def writer_page(browser: Browser) -> Iterator[Page]:
    """A second browser profile: another user's storage, locks and stream."""
    other: BrowserContext = browser.new_context(viewport={"width": 1200, "height": 900})
    other.set_default_timeout(20_000)
    yield other.new_page()
    other.close()


@pytest.fixture
def sse_restored(api: ApiServer) -> Iterator[None]:
    """Whatever a test leaves behind, the next one starts with everyone streaming."""
    yield
    admin = {"Authorization": f"Bearer {api.jwt('ops-admin', roles=('admin',))}"}
    httpx.put(
        f"{api.url}/api/v1/realtime/config", json={"mode": "sse", "percent": 100}, headers=admin
    ).raise_for_status()


def sign_in(page: Page, api: ApiServer, user: str, *, admin: bool = False) -> None:
    page.goto(api.url)
    page.get_by_label("User id").fill(user)
    if admin:
        page.get_by_label("Sign in as admin").check()
    page.get_by_role("button", name="Sign in").click()
    expect(status(page)).to_have_attribute("data-status", "connected")


def open_admin_page(page: Page) -> None:
    page.get_by_role("link", name="Admin").click()
    expect(page.get_by_role("heading", name="Operations report")).to_be_visible()


def public_connection_count(api: ApiServer) -> int:
    return int(httpx.get(f"{api.url}/api/v1/events/health", timeout=5).json()["connections"])


@pytest.mark.usefixtures("sse_restored")
def test_an_admin_watches_connections_and_moves_writers_to_polling_and_back(
    api: ApiServer, page: Page, writer_page: Page, user_id: str
) -> None:
    sign_in(page, api, f"admin-{user_id}", admin=True)
    open_admin_page(page)
    open_streams = page.get_by_test_id("open-connections")
    before = public_connection_count(api)
    expect(open_streams).to_have_text(str(before))
    expect(page.get_by_test_id("report-updated")).to_contain_text("Updated")
    expect(page.get_by_test_id("health-status")).to_have_text("ok")

    sign_in(writer_page, api, user_id)
    expect(writer_page.get_by_role("link", name="Admin")).to_have_count(0)
    expect(open_streams).to_have_text(str(before + 1))
    slowest = page.get_by_role("region", name="Slowest clients")
    expect(slowest.get_by_role("cell", name=user_id, exact=True)).to_be_visible()
    screenshot(page, "14-admin-report")

    page.get_by_role("radio", name="Polling").check()
    page.get_by_label("Share of writers polling (%)").fill("100")
    page.get_by_role("button", name="Apply mode").click()
    expect(page.get_by_test_id("mode-rule")).to_contain_text("100% of writers poll")
    # realtime.mode goes out at once: the writer polls well within one heartbeat.
    expect(status(writer_page)).to_have_attribute("data-status", "polling", timeout=HEARTBEAT_MS)
    expect(status(writer_page)).to_contain_text("paused by the server")
    expect(open_streams).to_have_text(str(before - 1))
    screenshot(writer_page, "15-writer-moved-to-polling")
    screenshot(page, "16-admin-polling-mode")

    page.get_by_role("radio", name="Live (SSE)").check()
    page.get_by_role("button", name="Apply mode").click()
    expect(page.get_by_test_id("mode-rule")).to_contain_text("everyone streams")
    # a polling browser re-reads the config on its next poll, then streams again
    expect(status(writer_page)).to_have_attribute(
        "data-status", "connected", timeout=POLL_INTERVAL_MS + HEARTBEAT_MS
    )
    expect(open_streams).to_have_text(str(before + 1), timeout=POLL_INTERVAL_MS + HEARTBEAT_MS)
    screenshot(writer_page, "17-writer-back-to-sse")

    api.stop()
    try:
        expect(page.get_by_test_id("report-error")).to_contain_text("The API does not answer")
        # the last report stays on screen, marked as such
        expect(open_streams).to_be_visible()
        screenshot(page, "18-admin-api-down")
    finally:
        api.start()
    expect(page.get_by_test_id("report-error")).to_have_count(0, timeout=15_000)
    expect(page.get_by_test_id("health-status")).to_have_text("ok")


@pytest.mark.usefixtures("sse_restored")
def test_a_writer_with_minimum_level_warning_gets_only_the_critical_notice(
    api: ApiServer, page: Page, writer_page: Page, user_id: str
) -> None:
    sign_in(writer_page, api, user_id)
    writer_page.get_by_role("link", name="Notifications").click()
    settings = writer_page.get_by_role("region", name="Notification settings")
    expect(settings.get_by_test_id("settings-state")).to_have_text("Saved")
    settings.get_by_label("Minimum level").select_option("warning")
    expect(settings.get_by_test_id("settings-state")).to_have_text("Unsaved changes")
    settings.get_by_role("button", name="Save settings").click()
    expect(settings.get_by_test_id("settings-state")).to_have_text("Saved")
    writer_page.reload()
    expect(status(writer_page)).to_have_attribute("data-status", "connected")
    expect(settings.get_by_label("Minimum level")).to_have_value("warning")
    screenshot(writer_page, "19-notification-settings")

    info = f"Maintenance tonight at 22:00 ({user_id})"
    critical = f"Writing is paused for 5 minutes ({user_id})"
    sign_in(page, api, f"admin-{user_id}", admin=True)
    open_admin_page(page)
    for level, message in (("info", info), ("critical", critical)):
        page.get_by_label("Level").select_option(level)
        page.get_by_label("Message").fill(message)
        page.get_by_role("button", name="Send notification").click()
        expect(page.get_by_test_id("notification-sent")).to_contain_text(f"{level}: “{message}”")
    screenshot(page, "20-admin-notification-sent")

    system = writer_page.get_by_role("region", name="System", exact=True)
    expect(system.get_by_text(critical)).to_be_visible()
    # Both went out on the broadcast stream in this order: the info one was filtered, not late.
    expect(system.get_by_text(info)).to_have_count(0)
    screenshot(writer_page, "21-writer-only-critical")

    page.get_by_role("link", name="Notifications").click()
    # Region names match as substrings unless exact: "Send a system notification" on the admin
    # page (its textarea and its "Sent" line both hold the message) would match "System" too.
    expect(page).to_have_url(re.compile(r"/notifications$"))
    admin_system = page.get_by_role("region", name="System", exact=True)
    expect(admin_system.get_by_text(critical)).to_be_visible()
    expect(admin_system.get_by_text(info)).to_be_visible()
