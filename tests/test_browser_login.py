"""The admin login, walked through in a real browser the way a newcomer meets it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser import save_screenshot
from tests.conftest import ADMIN_PASSWORD

pytestmark = pytest.mark.browser


def test_newcomer_logs_in_after_a_typo_and_logs_out(page: Page, admin_user: str) -> None:
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login\?next=/admin/$"))
    expect(page.get_by_role("heading", name="opmail admin")).to_be_visible()
    save_screenshot(page, "login")

    page.get_by_label("Username").fill(admin_user)
    page.get_by_label("Password").fill("correct horse battery staple")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("Wrong username or password.")).to_be_visible()

    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.get_by_text("Active accounts")).to_be_visible()
    save_screenshot(page, "dashboard")

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/admin/login$"))
    expect(page.get_by_text("You are logged out.")).to_be_visible()
    # The session is really gone: the admin home sends us back to the login page.
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login\?next=/admin/$"))
