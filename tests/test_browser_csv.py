"""Import CSV and Export CSV in a real browser: a file with one bad row, fixed, imported, exported."""

from __future__ import annotations

import csv
import re

import pytest
import sqlalchemy as sa
from flask import Flask
from playwright.sync_api import Page, expect

from opmail.models import MailAccount
from opmail.passwords import verify_password
from tests.browser import save_screenshot
from tests.helpers import add_domain, rows

pytestmark = pytest.mark.browser

HEADER = "email,password,quota_mb,display_name,status\n"
GOOD = "ann@example.com,ann pass 1,1024,Ann Example,active\n"
BAD = "bob@example.com,bob pass 2,lots,Bob Example,\n"
FIXED = "bob@example.com,bob pass 2,50,Bob Example,suspended\n"


def upload(page: Page, tmp_path, text: str) -> None:
    path = tmp_path / "accounts.csv"
    path.write_text(text)
    page.get_by_label("CSV file").set_input_files(path)
    page.get_by_role("button", name="Upload and check").click()


def test_import_preview_lists_the_bad_row_then_the_fixed_file_imports(
    logged_in_page: Page, app: Flask, tmp_path
) -> None:
    add_domain(app, "example.com")
    page = logged_in_page
    page.get_by_role("navigation").get_by_role("link", name="Accounts", exact=True).click()
    page.get_by_role("link", name="Import CSV").click()
    expect(page.get_by_role("heading", name="Import accounts from CSV")).to_be_visible()

    upload(page, tmp_path, HEADER + GOOD + BAD)
    expect(page.get_by_role("alert").filter(has_text="1 of 2 rows have problems (1 good).")).to_be_visible()
    expect(page.get_by_text("Nothing was written: fix the file and upload it again.")).to_be_visible()
    problems = page.locator("#opmail-import-problems tbody tr")
    expect(problems).to_have_count(1)
    expect(problems.first).to_contain_text("3")
    expect(problems.first).to_contain_text("quota_mb")
    expect(problems.first).to_contain_text("Quota must be a whole number of MB")
    bad_row = page.locator('#opmail-import-rows tr[data-row="3"]')
    expect(bad_row).to_have_class(re.compile("table-danger"))
    expect(page.locator('#opmail-import-rows tr[data-row="2"]')).to_contain_text("OK")
    expect(page.get_by_role("button", name=re.compile(r"^Import \d"))).to_have_count(0)
    expect(page.get_by_text("ann pass 1")).to_have_count(0)  # the preview never shows a password
    save_screenshot(page, "csv-import-preview-one-bad-row")
    assert rows(app, sa.select(MailAccount.email)) == []

    upload(page, tmp_path, HEADER + GOOD + FIXED)
    expect(page.get_by_text("2 accounts ready to import, no problems found.")).to_be_visible()
    save_screenshot(page, "csv-import-preview-ready")
    page.get_by_role("button", name="Import 2 accounts").click()

    expect(page).to_have_url(re.compile(r"/admin/accounts/$"))
    expect(page.get_by_text("Imported 2 accounts.")).to_be_visible()
    save_screenshot(page, "csv-accounts-list-after-import")
    expect(page.locator('#opmail-accounts tr[data-email="ann@example.com"]')).to_contain_text("1.0 GB")
    bob = page.locator('#opmail-accounts tr[data-email="bob@example.com"]')
    expect(bob).to_contain_text("Suspended")
    expect(bob).to_contain_text("Bob Example")
    stored = dict(rows(app, sa.select(MailAccount.email, MailAccount.password)))
    assert verify_password("ann pass 1", stored["ann@example.com"])
    assert verify_password("bob pass 2", stored["bob@example.com"])


def test_export_link_downloads_the_filtered_accounts(logged_in_page: Page, app: Flask, tmp_path) -> None:
    add_domain(app, "example.com")
    page = logged_in_page
    page.goto("/admin/accounts/import/")
    upload(page, tmp_path, HEADER + GOOD + FIXED + "carl@example.com,carl pass 3,,=1+2,\n")
    # Wait for the list to load completely: htmx (a deferred script) must be up before the search.
    with page.expect_navigation(url=re.compile(r"/admin/accounts/$")):
        page.get_by_role("button", name="Import 3 accounts").click()
    expect(page.get_by_text("Imported 3 accounts.")).to_be_visible()

    for search, expected in (("b", "bob@example.com"), ("carl", "carl@example.com")):
        page.get_by_label("Search by email address or domain").fill(search)
        export = page.get_by_role("link", name="Export CSV")
        # The link comes with the table htmx swaps in: it follows the search.
        expect(export).to_have_attribute("href", f"/admin/accounts/export/?q={search}")
        with page.expect_download() as download_info:
            export.click()
        (line,) = csv.DictReader(download_info.value.path().read_text().splitlines())
        assert line["email"] == expected
    assert line["display_name"] == "'=1+2"  # a spreadsheet shows it as text, never runs it
