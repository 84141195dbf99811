"""Aliases and the dashboard in a real browser: an alias with two destinations, figures that link."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser import save_screenshot
from tests.helpers import add_account, add_domain

pytestmark = pytest.mark.browser


def test_admin_adds_an_alias_with_two_destinations_and_searches_it(app, logged_in_page: Page) -> None:
    add_domain(app, "example.com")
    add_account(app, "jane@example.com")
    add_account(app, "bob@example.com", quota_mb=0)
    page = logged_in_page
    page.get_by_role("link", name="Aliases").click()
    page.get_by_label("Alias address").fill("team@example.com")
    page.get_by_label("Destinations", exact=True).fill("jane@example.com\nghost@example.com")
    page.get_by_role("button", name="Add Alias").click()
    expect(page.get_by_text("No account, alias or group ghost@example.com exists here")).to_be_visible()

    page.get_by_label("Destinations", exact=True).fill("jane@example.com\npartner@elsewhere.net")
    page.get_by_role("button", name="Add Alias").click()
    expect(page.get_by_text("Alias team@example.com added.")).to_be_visible()
    row = page.locator('tr[data-alias="team@example.com"]')
    expect(row.locator("[data-destination]")).to_have_text(["jane@example.com", "partner@elsewhere.net"])

    page.get_by_label("Alias address").fill("@example.com")
    page.get_by_label("Destinations", exact=True).fill("bob@example.com")
    page.get_by_role("button", name="Add Alias").click()
    save_screenshot(page, "aliases")

    # Active search swaps the table in place and keeps the URL shareable.
    page.get_by_label("Search aliases and destinations").fill("partner")
    expect(page.locator("tr[data-alias]")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"/admin/aliases/\?q=partner$"))

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Delete").click()
    expect(page.get_by_text("No aliases match.")).to_be_visible()


def test_dashboard_figure_opens_the_list_it_counts(app, logged_in_page: Page) -> None:
    add_domain(app, "example.com")
    add_account(app, "jane@example.com")
    page = logged_in_page
    page.reload()
    save_screenshot(page, "dashboard-figures")
    page.get_by_text("Active accounts").click()
    expect(page).to_have_url(re.compile(r"/admin/accounts/\?status=active$"))
    expect(page.locator("tr[data-email]")).to_have_count(1)
    expect(page.get_by_label("Two-factor authentication")).to_have_value("")
