"""The Content-Security-Policy in a real browser: the pages still work and nothing is refused."""

from __future__ import annotations

import pytest
from flask import Flask
from playwright.sync_api import ConsoleMessage, Page, expect

from tests.helpers import add_account, add_domain

pytestmark = pytest.mark.browser


@pytest.fixture
def csp_violations(logged_in_page: Page) -> list[str]:
    """Every CSP refusal Chromium reports on the page's console (the login page included)."""
    violations: list[str] = []

    def record(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    logged_in_page.on("console", record)
    return violations


def test_search_and_bulk_suspend_work_under_the_csp(
    logged_in_page: Page, app: Flask, csp_violations: list[str]
) -> None:
    add_domain(app, "example.com")
    for name in ("ann", "bob", "cat"):
        add_account(app, f"{name}@example.com")
    page = logged_in_page
    page.goto("/admin/accounts/")
    page.evaluate("window.__marker = 1")

    page.get_by_label("Search by email address or domain").press_sequentially("bo")
    expect(page.locator("#opmail-accounts tbody tr[data-email]")).to_have_count(1)

    page.get_by_label("Select bob@example.com", exact=True).check()
    page.get_by_label("Bulk Actions").select_option(label="Suspend")
    page.get_by_role("button", name="Apply to selected").click()
    expect(page.locator("#opmail-toasts").get_by_text("1 account suspended.")).to_be_visible()
    row = page.locator('#opmail-accounts tr[data-email="bob@example.com"]')
    expect(row.get_by_text("Suspended", exact=True)).to_be_visible()
    assert page.evaluate("window.__marker") == 1, "htmx swapped in place (scripts ran)"
    assert csp_violations == []


@pytest.mark.parametrize(
    "url", ["/admin/", "/admin/accounts/new/", "/admin/domains/", "/admin/sync-log/", "/admin/audit/", "/admin/dovecot/"]
)
def test_admin_pages_load_without_csp_refusals(
    logged_in_page: Page, csp_violations: list[str], url: str
) -> None:
    response = logged_in_page.goto(url)
    assert response is not None and response.status == 200
    assert "Content-Security-Policy" in {name.title() for name in response.headers}
    logged_in_page.wait_for_load_state("load")
    assert csp_violations == []


def test_sync_log_filter_menu_works_under_the_csp(
    logged_in_page: Page, csp_violations: list[str]
) -> None:
    # Flask-Admin's stock list: its inline no-op handlers are the only ones the policy allows.
    page = logged_in_page
    page.goto("/admin/sync-log/")
    page.get_by_role("link", name="Add Filter").click()
    page.locator(".field-filters a.filter", has_text="Outcome").click()
    expect(page.locator(".filters .remove-filter")).to_have_count(1)
    assert page.url.endswith("/admin/sync-log/")
    assert csp_violations == []
