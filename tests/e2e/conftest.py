"""The real stack (Redis, a Celery worker, the API serving the built frontend) and a real
browser: Debian's Chromium driven by Playwright. Screenshots go to test-artifacts/screenshots."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from progress.redis_server import RedisServer
from tests.servers import ApiServer
from tests.workers import WorkerProcess
from workers import resources
from workers.migrate import upgrade
from workers.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "frontend" / "dist"
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
# Chromium as root in a container: no sandbox, no GPU, nothing phoning home, a fresh profile
# (Playwright gives every launch its own --user-data-dir).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FLOWER_URL = "http://flower.example.test"


@pytest.fixture(scope="module")
def stack_env(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """What the worker and the API share: Redis, a fresh database, a fake LLM slow enough that
    a novel takes a few seconds (so the API can be restarted in the middle of one)."""
    database = Path(tmp_path_factory.mktemp("e2e-db")) / "novels.db"
    upgrade(f"sqlite:///{database}")
    return {
        "REDIS_URL": f"{redis_server.url}/0",
        "DATABASE_URL": f"sqlite:///{database}",
        "WORKER_BROKER_DB": "5",
        "WORKER_RESULT_DB": "6",
        "WORKER_LOCAL_TOKENS_PER_SECOND": "40",
        "WORKER_TOKENS_PER_CHAPTER": "80",
        "PROGRESS_HEARTBEAT_SECONDS": "1",
    }


@pytest.fixture(scope="module")
def worker(stack_env: dict[str, str]) -> Iterator[WorkerProcess]:
    resources.configure(
        WorkerSettings(
            redis_url=stack_env["REDIS_URL"],
            database_url=stack_env["DATABASE_URL"],
            broker_db=5,
            result_db=6,
        )
    )
    with WorkerProcess(stack_env) as process:
        yield process
    resources.configure(None)


@pytest.fixture(scope="module")
def api(stack_env: dict[str, str]) -> Iterator[ApiServer]:
    """The API serving frontend/dist (built by `make frontend`), with short intervals."""
    if not (DIST / "index.html").is_file():
        pytest.fail("frontend/dist is missing: run `make frontend` first")
    server = ApiServer(
        stack_env["REDIS_URL"],
        DATABASE_URL=stack_env["DATABASE_URL"],
        WORKER_BROKER_DB=stack_env["WORKER_BROKER_DB"],
        WORKER_RESULT_DB=stack_env["WORKER_RESULT_DB"],
        SSE_RETRY_MS="500",
        SSE_HEARTBEAT_SECONDS="5",
        SSE_ACTIVE_POLL_INTERVAL_SECONDS="1",
        SSE_POLL_INTERVAL_SECONDS="5",
        FLOWER_URL=FLOWER_URL,
    )
    with server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("/usr/bin/chromium is missing: run scripts/install-system-deps.sh")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile (its own storage, BroadcastChannel and locks) per test."""
    created = browser.new_context(viewport={"width": 1200, "height": 900})
    created.set_default_timeout(20_000)
    yield created
    created.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def screenshot(page: Page, name: str) -> None:
    """Save what the page shows now as test-artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
