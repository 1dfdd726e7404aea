"""Issue 21 end to end: the novel page shows one overall bar, with the time left, above the
per-task bars, and it ends at every step done."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import screenshot
from tests.e2e.test_browser import CHAPTERS, sign_in, start_novel
from tests.servers import ApiServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150), pytest.mark.usefixtures("worker")]

#: create_novel, the outline, one task per chapter, the review.
STEPS = CHAPTERS + 3


def test_the_novel_page_shows_one_overall_bar_with_time_left_above_the_steps(
    api: ApiServer, page: Page, user_id: str
) -> None:
    sign_in(page, api, user_id)
    start_novel(page, "The Whole Book")
    overall = page.get_by_test_id("workflow-progress")
    expect(overall).to_be_visible(timeout=20_000)
    first_bar = page.get_by_role("progressbar").first
    expect(first_bar).to_have_attribute("aria-label", "Overall progress")
    expect(page.get_by_test_id("workflow-eta")).to_have_text(re.compile(r"left$"), timeout=30_000)
    screenshot(page, "21-novel-overall-bar")
    expect(overall).to_have_attribute("data-status", "completed", timeout=60_000)
    expect(page.get_by_test_id("workflow-counts")).to_have_text(f"{STEPS} of {STEPS} steps done")
    expect(first_bar).to_have_attribute("aria-valuenow", "100")
    page.reload()  # a new page gets the totals at once from the snapshot
    expect(page.get_by_test_id("workflow-counts")).to_have_text(f"{STEPS} of {STEPS} steps done")
    # A revision afterwards has a bar of its own; the novel's overall bar stays finished.
    page.get_by_role("button", name="Revise chapter 2").click()
    revision = page.get_by_role("progressbar", name="Revising chapter 2 progress")
    expect(revision).to_have_attribute("aria-valuenow", "100", timeout=30_000)
    expect(overall).to_have_attribute("data-status", "completed")
    expect(page.get_by_test_id("workflow-counts")).to_have_text(f"{STEPS} of {STEPS} steps done")
