"""Issue 19 item 1 in a real browser: notices a writer cannot miss. Sent the operator's way
(``python -m api.notify_cli``): critical notifications and system errors are banners on every
page until dismissed (dismissals survive a reload), warnings are toasts, info stays in the
notification center, and the writer's preferences still filter what arrives."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import screenshot
from tests.e2e.test_admin import sign_in
from tests.servers import ApiServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90), pytest.mark.usefixtures("worker")]

STATUS_PAGE = "https://status.example.test/incidents"


def notify(stack_env: dict[str, str], *args: str) -> None:
    """Send as an operator does: the command-line tool, journaled then pushed."""
    env = {
        **os.environ,
        "REDIS_URL": stack_env["REDIS_URL"],
        "DATABASE_URL": stack_env["DATABASE_URL"],
    }
    result = subprocess.run(
        [sys.executable, "-m", "api.notify_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_each_level_shows_where_it_should_and_dismissals_survive_a_reload(
    api: ApiServer, page: Page, stack_env: dict[str, str], user_id: str
) -> None:
    sign_in(page, api, user_id)
    info = f"Maintenance tonight at 22:00 ({user_id})"
    warning = f"Generation is slower than usual ({user_id})"
    critical = f"Writing is paused for 5 minutes ({user_id})"
    error = f"The text generator does not answer ({user_id})"
    banners = page.get_by_test_id("notice-banner")
    toasts = page.get_by_test_id("toast")

    notify(stack_env, "info", info, "--user", user_id)
    notify(stack_env, "warning", warning, "--user", user_id, "--action", "Save your work often")
    toast = toasts.filter(has_text=warning)
    expect(toast).to_be_visible()
    expect(toast).to_contain_text("Save your work often")
    screenshot(page, "30-notice-warning-toast")
    # The info notice came first on the same stream: it arrived, and is neither toast nor banner.
    expect(toasts.filter(has_text=info)).to_have_count(0)
    expect(banners).to_have_count(0)
    expect(page.get_by_test_id("unread-count")).to_have_text("2")

    notify(stack_env, "critical", critical, "--user", user_id, "--action", f"See {STATUS_PAGE}")
    critical_banner = banners.filter(has_text=critical)
    expect(critical_banner).to_be_visible()
    expect(critical_banner.get_by_role("link", name=f"See {STATUS_PAGE}")).to_have_attribute(
        "href", STATUS_PAGE
    )
    screenshot(page, "31-notice-critical-banner")
    notify(
        stack_env, "--error", "high", error, "--scope", "chapter generation",
        "--user", user_id, "--action", "Retry your chapters in a few minutes",
    )  # fmt: skip
    error_banner = banners.filter(has_text=error)
    expect(error_banner).to_contain_text("Affects: chapter generation")
    expect(error_banner).to_contain_text("Retry your chapters in a few minutes")
    expect(banners).to_have_count(2)
    expect(toasts.filter(has_text=critical)).to_have_count(0)
    screenshot(page, "32-notice-error-banner")

    # On every page, not just the one it arrived on; info is in the center, and only there.
    page.get_by_role("link", name="Notifications").click()
    expect(banners).to_have_count(2)
    system = page.get_by_role("region", name="System", exact=True)
    expect(system.get_by_text(info)).to_be_visible()
    screenshot(page, "33-notice-info-in-center")

    critical_banner.get_by_role("button", name=f"Dismiss notice: {critical}").click()
    expect(critical_banner).to_have_count(0)
    page.reload()
    expect(error_banner).to_be_visible()
    expect(banners).to_have_count(1)
    page.get_by_role("link", name="Novels").click()
    expect(banners).to_have_count(1)
    error_banner.get_by_role("button", name=f"Dismiss notice: {error}").click()
    page.reload()
    expect(page.get_by_role("heading", name="New novel")).to_be_visible()
    expect(banners).to_have_count(0)
    screenshot(page, "34-notices-dismissed-after-reload")


def test_the_writers_minimum_level_still_filters_banners_and_toasts(
    api: ApiServer, page: Page, stack_env: dict[str, str], user_id: str
) -> None:
    headers = {"Authorization": f"Bearer {api.jwt(user_id)}"}
    httpx.put(
        f"{api.url}/api/v1/me/notification-preferences",
        json={"min_level": "critical", "muted_types": ["system.notification", "system.error"]},
        headers=headers,
    ).raise_for_status()
    sign_in(page, api, user_id)
    warning = f"Generation is slower than usual ({user_id})"
    high = f"Some chapters fail ({user_id})"
    critical = f"Writing is paused for 5 minutes ({user_id})"
    notify(stack_env, "warning", warning, "--user", user_id)
    notify(stack_env, "--error", "high", high, "--user", user_id)
    notify(stack_env, "critical", critical, "--user", user_id)
    banners = page.get_by_test_id("notice-banner")
    # Critical passes any filter (muting it has no effect); the others were filtered at the
    # server, not late: they went out before it on the same stream.
    expect(banners.filter(has_text=critical)).to_be_visible()
    expect(banners).to_have_count(1)
    expect(page.get_by_test_id("toast").filter(has_text=warning)).to_have_count(0)
    expect(page.get_by_test_id("unread-count")).to_have_text("1")
    screenshot(page, "35-notice-filtered-only-critical")
