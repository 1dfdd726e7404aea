"""Issue 19 (3) in a real browser: a writer picks chapters of a finished novel, revises them in
one batch, and sees one bar reach 100% while the chapters update in place."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import screenshot
from tests.e2e.test_browser import CHAPTERS, expect_novel_done, sign_in, start_novel
from tests.servers import ApiServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150), pytest.mark.usefixtures("worker")]


def test_a_writer_revises_the_chapters_picked_in_one_batch(
    api: ApiServer, page: Page, user_id: str
) -> None:
    sign_in(page, api, user_id)
    start_novel(page, "The Batch")
    expect_novel_done(page)
    batch = page.get_by_role("region", name="Revise several chapters")
    start = batch.get_by_role("button", name="Revise")
    expect(start).to_be_disabled()  # nothing picked yet

    batch.get_by_label("All").check()
    batch.get_by_label("Select chapter 2 for revision").uncheck()
    expect(start).to_have_text(f"Revise {CHAPTERS - 1} selected")
    summaries = page.get_by_test_id("chapter").locator("p").all_text_contents()
    start.click()

    bar = page.get_by_role("progressbar", name="Revising the selected chapters progress")
    expect(bar).to_have_attribute("aria-valuenow", "100", timeout=30_000)
    screenshot(page, "batch-revised")
    chapters = page.get_by_test_id("chapter")
    expect(chapters.nth(1).locator("p")).to_have_text(summaries[1])  # not picked: unchanged
    for index in (0, 2):
        expect(chapters.nth(index).locator("p")).not_to_have_text(summaries[index])
