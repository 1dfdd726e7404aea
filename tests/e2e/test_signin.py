"""Signing in to a server that mints no development tokens (production, or the compose stack
without its dev override): the page says where a token comes from and takes the one the
platform's login gave, in a real Chromium against the real API."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from api.auth.tokens import mint_jwt
from tests.e2e.conftest import screenshot
from tests.servers import ApiServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

SECRET = secrets.token_urlsafe(48)


@pytest.fixture(scope="module")
def production_api(stack_env: dict[str, str]) -> Iterator[ApiServer]:
    server = ApiServer(
        stack_env["REDIS_URL"],
        DATABASE_URL=stack_env["DATABASE_URL"],
        JWT_SECRET=SECRET,
        SSE_DEV_TOKENS_ENABLED="false",
        # Its own keys: strikes and bans other tests left for 127.0.0.1 in the session's Redis
        # must not refuse this page, nor its forged token theirs.
        PROGRESS_KEY_PREFIX=f"signin{secrets.token_hex(4)}",
    )
    with server:
        yield server


def test_without_dev_tokens_the_page_says_so_and_takes_the_platform_token(
    page: Page, production_api: ApiServer
) -> None:
    page.goto(production_api.url)
    page.get_by_label("User id").fill("ada")
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("status")).to_contain_text("does not issue development tokens")
    expect(page.get_by_role("status")).to_contain_text("platform's login")
    screenshot(page, "signin-dev-tokens-off")

    forged = mint_jwt("not-the-server-secret-" + "x" * 30, "mallory")
    page.get_by_label("Token from your login").fill(forged)
    page.get_by_role("button", name="Sign in with this token").click()
    expect(page.get_by_role("alert")).to_contain_text("signature is wrong")

    page.get_by_label("Token from your login").fill(mint_jwt(SECRET, "ada", ttl_seconds=600))
    page.get_by_role("button", name="Sign in with this token").click()
    expect(page.get_by_role("heading", name="New novel")).to_be_visible()
    expect(page.locator(".user")).to_have_text("ada")  # the user the server read
