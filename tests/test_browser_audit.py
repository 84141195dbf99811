"""The audit log in a real browser: a bulk quota change, seen from the dashboard's Last admin actions."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser import save_screenshot
from tests.helpers import add_account, add_domain

pytestmark = pytest.mark.browser


def test_dashboard_last_admin_action_opens_the_log_filtered_on_its_target(app, logged_in_page: Page) -> None:
    add_domain(app, "example.com")
    add_account(app, "jane@example.com", quota_mb=100)
    add_account(app, "bob@example.com", quota_mb=50)
    add_account(app, "carol@example.com", quota_mb=50)
    page = logged_in_page
    page.get_by_role("link", name="Accounts", exact=True).click()
    page.get_by_label("Select jane@example.com", exact=True).check()
    page.get_by_label("Select bob@example.com", exact=True).check()
    page.get_by_label("Bulk Actions").select_option(label="Edit Quota")
    page.get_by_label("Quota (MB)").fill("10")
    page.get_by_role("button", name="Apply to selected").click()
    expect(page.locator("#opmail-toasts").get_by_text("2 accounts set to the new quota.")).to_be_visible()
    # A second change, on another account, that the filtered log must leave out.
    page.get_by_label("Select carol@example.com", exact=True).check()
    page.get_by_label("Bulk Actions").select_option(label="Suspend")
    page.get_by_role("button", name="Apply to selected").click()
    expect(page.locator("#opmail-toasts").get_by_text("1 account suspended.")).to_be_visible()

    page.get_by_role("link", name="Dashboard", exact=True).click()
    card = page.locator("#admin-actions")
    expect(card.locator("tbody tr")).to_have_count(2)
    expect(card.locator("tbody tr").first).to_contain_text("account.suspend")
    save_screenshot(page, "dashboard-admin-actions")
    row = card.locator("tbody tr").nth(1)
    expect(row).to_contain_text("+1 more")
    row.get_by_role("link", name="jane@example.com").click()

    expect(page).to_have_url(re.compile(r"/admin/audit/\?flt0_target_is=jane(@|%40)example\.com$"))
    rows = page.locator("table.model-list tbody tr, table.model-list > tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("account.quota")
    expect(rows.first).to_contain_text("bob@example.com Quota: 50 MB → 10 MB")
    expect(rows.first).to_contain_text("jane@example.com Quota: 100 MB → 10 MB")
    save_screenshot(page, "audit-log-filtered")
