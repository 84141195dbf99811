"""Admin 2FA in a real browser: enrol with the key shown on the page, log out, log in with a code."""

from __future__ import annotations

import re
import time

import pyotp
import pytest
from playwright.sync_api import Page, expect

from tests.browser import save_screenshot
from tests.conftest import ADMIN_PASSWORD
from tests.test_admin_2fa import steady_clock  # noqa: F401  (autouse: codes early in a time step)

pytestmark = pytest.mark.browser


def test_admin_enrols_logs_out_and_logs_in_with_a_code(logged_in_page: Page) -> None:
    page = logged_in_page
    page.get_by_role("link", name="Two-factor authentication: off").click()
    expect(page.get_by_role("heading", name="Two-factor authentication")).to_be_visible()
    save_screenshot(page, "admin-2fa-set-up")
    page.get_by_role("button", name="Set up two-factor authentication").click()
    expect(page.locator("figure.opmail-qr svg")).to_be_visible()
    save_screenshot(page, "admin-2fa-enrol")

    secret = page.locator("[data-totp-key]").inner_text().replace(" ", "")
    totp = pyotp.TOTP(secret)
    field = page.get_by_label("Code from your authenticator app")
    field.fill("12 345")
    page.get_by_role("button", name="Turn on two-factor authentication").click()
    expect(page.get_by_text("enter the 6 digits (0-9)")).to_be_visible()
    # The previous step's code, still accepted: the current one stays free for the login below.
    page.get_by_label("Code from your authenticator app").fill(totp.at(time.time(), counter_offset=-1))
    page.get_by_role("button", name="Turn on two-factor authentication").click()
    expect(page.get_by_text("they are not shown again")).to_be_visible()
    expect(page.locator("[data-recovery-codes] li")).to_have_count(8)
    save_screenshot(page, "admin-2fa-recovery-codes")

    page.get_by_role("button", name="Log out").click()
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/admin/login/code"))
    code = page.get_by_label("Authentication code")
    expect(code).to_be_focused()
    save_screenshot(page, "admin-2fa-login-code")
    code.fill(totp.now())
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.get_by_role("link", name="Two-factor authentication: on")).to_be_visible()


def test_recovery_code_link_works_without_a_phone(logged_in_page: Page) -> None:
    page = logged_in_page
    page.goto("/admin/two-factor/")
    page.get_by_role("button", name="Set up two-factor authentication").click()
    totp = pyotp.TOTP(page.locator("[data-totp-key]").inner_text().replace(" ", ""))
    page.get_by_label("Code from your authenticator app").fill(totp.now())
    page.get_by_role("button", name="Turn on two-factor authentication").click()
    first = page.locator("[data-recovery-codes] li").first.inner_text()

    page.get_by_role("button", name="Log out").click()
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Lost your phone? Use a recovery code").click()
    page.get_by_label("Recovery code").fill(first)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("You logged in with a recovery code: 7 left.")).to_be_visible()
