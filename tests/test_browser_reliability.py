"""What an admin sees in a real browser when the account changed under them or the database is away."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from opmail.passwords import hash_password
from opmail.rules import sync
from tests.browser import save_screenshot
from tests.helpers import add_account, add_domain
from tests.test_db_outage import AWAY, database_fails

pytestmark = pytest.mark.browser


def test_a_stale_details_form_says_so_and_a_reload_saves(logged_in_page: Page, app: Flask) -> None:
    add_domain(app)
    jane = add_account(app, "jane@example.com", display_name="Jane")
    page = logged_in_page
    page.goto(f"/admin/accounts/edit/?id={jane}")
    page.get_by_label("Display name").fill("Jane Doe")
    with app.app_context():  # meanwhile, the Panel sets a new password
        sync.sync_password("jane@example.com", hash_password("x", "BLF-CRYPT", bcrypt_rounds=4), None)
    page.get_by_role("button", name="Save", exact=True).click()
    alert = page.get_by_role("alert")
    expect(alert).to_have_text(
        "This account was changed by someone else (password) since you opened this page."
        " Reload to see the current values."
    )
    save_screenshot(page, "account-stale-form")
    page.goto(f"/admin/accounts/edit/?id={jane}")
    page.get_by_label("Display name").fill("Jane Doe")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Account saved.")).to_be_visible()
    expect(page.get_by_label("Display name")).to_have_value("Jane Doe")


def test_a_search_while_the_database_is_away_shows_one_toast(logged_in_page: Page, app: Flask) -> None:
    page = logged_in_page
    page.goto("/admin/accounts/")
    with database_fails(app):
        page.get_by_label("Search by email address or domain").press_sequentially("jane")
        expect(page.locator("#opmail-toasts").get_by_text(AWAY)).to_be_visible()
        # Only the server's message: no generic "The request failed (503)." beside it.
        expect(page.locator("#opmail-toasts .alert")).to_have_count(1)
        save_screenshot(page, "accounts-database-away-toast")
        page.goto("/admin/accounts/")
        expect(page.get_by_role("heading", name="Database not answering")).to_be_visible()
        expect(page.get_by_text(AWAY)).to_be_visible()
        save_screenshot(page, "database-away-page")
    page.get_by_role("link", name="Try again").click()
    expect(page).to_have_url(re.compile(r"/admin/accounts/$"))
    expect(page.get_by_label("Search by email address or domain")).to_be_visible()
