"""Groups and autoresponders in a real browser: Bulk Actions → Add to group, then the account page."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser import save_screenshot
from tests.helpers import add_account, add_domain

pytestmark = pytest.mark.browser


def test_bulk_add_to_group_then_autoresponder_on_the_account_page(app, logged_in_page: Page) -> None:
    add_domain(app, "example.com")
    for name in ("ann", "ben", "cat"):
        add_account(app, f"{name}@example.com")
    page = logged_in_page
    page.get_by_role("link", name="Groups").click()
    page.get_by_label("Name").fill("staff")
    page.get_by_role("button", name="Add Group").click()
    expect(page.get_by_text("Group staff added.")).to_be_visible()

    page.get_by_role("link", name="Accounts", exact=True).click()
    for email in ("ann@example.com", "ben@example.com"):
        page.get_by_label(f"Select {email}", exact=True).check()
    page.get_by_label("Bulk Actions").select_option(label="Add to group")
    page.get_by_label("Group", exact=True).select_option(label="staff")
    page.get_by_role("button", name="Apply to selected").click()
    expect(page.get_by_text("2 accounts added to the group.")).to_be_visible()

    page.get_by_role("link", name="ann@example.com", exact=True).click()
    expect(page.locator('[data-group="staff"]')).to_be_visible()
    page.get_by_role("link", name="Add Autoresponder").click()
    page.get_by_label("Subject").fill("Away")
    page.get_by_label("Reply text").fill("Back on Monday.")
    page.get_by_label("Starts on").fill("2026-12-10")
    page.get_by_label("Ends on").fill("2026-12-01")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("The end date is before the start date.")).to_be_visible()
    page.get_by_label("Ends on").fill("2026-12-20")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Autoresponder for ann@example.com saved.")).to_be_visible()

    page.get_by_role("link", name="Accounts", exact=True).click()
    page.get_by_role("link", name="ann@example.com", exact=True).click()
    expect(page.locator("[data-autoresponder]")).to_contain_text("Away")
    save_screenshot(page, "account-groups-autoresponder")
