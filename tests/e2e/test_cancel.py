"""Issue 19 items 2 and 5 in a real browser: a writer cancels one running chapter (its bar ends
cancelled, by them, while the others go on) and a whole novel's workflow, each after a
confirmation; finished bars say what the task came to, not its first stage."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.conftest import screenshot
from tests.e2e.test_admin import sign_in
from tests.e2e.test_browser import CHAPTERS, start_novel
from tests.servers import ApiServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150), pytest.mark.usefixtures("worker")]


@pytest.fixture(scope="module")
def stack_env(stack_env: dict[str, str]) -> dict[str, str]:
    """Chapters slow enough (about 8 s each) to be cancelled by hand while they run."""
    return {**stack_env, "WORKER_LOCAL_TOKENS_PER_SECOND": "80", "WORKER_TOKENS_PER_CHAPTER": "640"}


def bars(page: Page, name: str) -> Locator:
    return page.get_by_test_id("task-progress").filter(
        has=page.locator(".task-name", has_text=re.compile(f"^{name}$"))
    )


def test_a_writer_cancels_one_running_chapter_and_the_others_go_on(
    api: ApiServer, page: Page, user_id: str
) -> None:
    sign_in(page, api, user_id)
    start_novel(page, "Cancel one")
    chapters = bars(page, "Generate chapter")
    expect(chapters).to_have_count(CHAPTERS, timeout=30_000)
    for index in range(CHAPTERS):
        expect(chapters.nth(index)).to_have_attribute("data-status", "running")
    doomed = chapters.nth(0)
    expect(doomed.get_by_role("progressbar")).not_to_have_attribute("aria-valuenow", "0")
    doomed.get_by_role("button", name="Cancel Generate chapter").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("What it has written so far is kept")
    screenshot(page, "36-cancel-confirmation")
    dialog.get_by_role("button", name="Cancel task").click()
    expect(dialog).to_have_count(0)

    expect(doomed).to_have_attribute("data-status", "cancelled")
    expect(doomed.get_by_test_id("task-outcome")).to_have_text("Cancelled by you")
    expect(doomed.get_by_role("button", name="Cancel Generate chapter")).to_have_count(0)
    for index in range(1, CHAPTERS):
        survivor = chapters.nth(index)
        expect(survivor).to_have_attribute("data-status", "completed", timeout=30_000)
        expect(survivor.get_by_test_id("task-outcome")).to_have_text(
            re.compile(r"^Chapter \d written \(\d+ words\)$")
        )
    expect(page.get_by_test_id("chapters-written")).to_have_text(
        f"{CHAPTERS - 1} of {CHAPTERS} chapters written"
    )
    # The writer stopped a chapter the review needs: the novel ends cancelled, not failed.
    expect(page.get_by_test_id("novel-status")).to_have_text("cancelled")
    screenshot(page, "37-one-chapter-cancelled-others-done")


def test_a_writer_cancels_a_whole_workflow(api: ApiServer, page: Page, user_id: str) -> None:
    sign_in(page, api, user_id)
    start_novel(page, "Cancel all")
    chapters = bars(page, "Generate chapter")
    expect(chapters).to_have_count(CHAPTERS, timeout=30_000)
    page.get_by_role("button", name="Cancel workflow").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Stop writing “Cancel all”?")
    dialog.get_by_role("button", name="Keep going").click()
    expect(dialog).to_have_count(0)
    expect(chapters.first).to_have_attribute("data-status", "running")

    page.get_by_role("button", name="Cancel workflow").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel workflow").click()
    expect(page.get_by_test_id("novel-status")).to_have_text("cancelled")
    for index in range(CHAPTERS):
        expect(chapters.nth(index)).to_have_attribute("data-status", "cancelled")
        expect(chapters.nth(index).get_by_test_id("task-outcome")).to_have_text("Cancelled by you")
    expect(page.get_by_role("button", name="Cancel workflow")).to_have_count(0)
    expect(page.get_by_test_id("toast").filter(has_text="was cancelled")).to_be_visible()
    screenshot(page, "38-workflow-cancelled")


def test_finished_bars_read_as_finished_and_stay_so_after_a_reload(
    api: ApiServer, page: Page, user_id: str
) -> None:
    sign_in(page, api, user_id)
    start_novel(page, "Finished")
    expect(page.get_by_test_id("novel-status")).to_have_text("done", timeout=90_000)
    expected = {
        "Create novel": f"Workflow of {CHAPTERS} chapters started",
        "Generate outline": f"Outline of {CHAPTERS} chapters",
        "Review novel": f"Finished: {CHAPTERS} chapters done",
    }
    for _ in range(2):  # live, then from the snapshots after a reload
        for name, summary in expected.items():
            bar = bars(page, name)
            expect(bar).to_have_attribute("data-status", "completed")
            expect(bar.get_by_test_id("task-outcome")).to_have_text(summary)
        chapters = bars(page, "Generate chapter")
        expect(chapters).to_have_count(CHAPTERS)
        for index in range(CHAPTERS):
            expect(chapters.nth(index).get_by_test_id("task-outcome")).to_contain_text("written")
        # the first stage and message of the workflow are gone
        expect(page.get_by_text("Starting the workflow")).to_have_count(0)
        expect(page.get_by_role("button", name=re.compile("^Cancel"))).to_have_count(0)
        screenshot(page, "39-finished-bars")
        page.reload()
        expect(page.get_by_test_id("novel-status")).to_have_text("done")
