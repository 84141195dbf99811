"""Forwarding on the account page and a group's address, in a real browser."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser import save_screenshot
from tests.helpers import add_account, add_domain

pytestmark = pytest.mark.browser


def test_forward_an_account_and_give_a_group_an_address(app, logged_in_page: Page) -> None:
    add_domain(app, "example.com")
    for name in ("ann", "ben"):
        add_account(app, f"{name}@example.com")
    page = logged_in_page
    page.get_by_role("link", name="Accounts", exact=True).click()
    page.get_by_role("link", name="ann@example.com", exact=True).click()
    expect(page.get_by_text("Off: mail stays in this mailbox.")).to_be_visible()
    page.get_by_label("Forward to").fill("ann@self")
    page.get_by_role("button", name="Save Forwarding").click()
    expect(page.get_by_text("ann@self: ")).to_be_visible()
    page.get_by_label("Forward to").fill("ben@example.com\nann@elsewhere.example")
    page.get_by_label("Keep a copy in this mailbox").check()
    page.get_by_role("button", name="Save Forwarding").click()
    expect(page.get_by_text("On: new mail goes to ben@example.com, ann@elsewhere.example and stays")).to_be_visible()
    save_screenshot(page, "account-forwarding")

    page.get_by_role("link", name="Groups").click()
    expect(page.get_by_text("A group is a distribution list")).to_be_visible()
    page.get_by_label("Name").fill("staff")
    page.get_by_label("Group address").fill("ann@example.com")
    page.get_by_role("button", name="Add Group").click()
    expect(page.get_by_text("ann@example.com is already an account")).to_be_visible()
    page.get_by_label("Group address").fill("staff@example.com")
    page.get_by_role("button", name="Add Group").click()
    expect(page.get_by_text("Group staff added.")).to_be_visible()
    expect(page.locator('[data-group="staff"]')).to_contain_text("staff@example.com")
    save_screenshot(page, "groups-with-address")
