"""Admin → Domains and Accounts in a real browser, walked through the way a new admin meets them.

Each test sets up its own data (through ``tests.helpers``, the same rules the admin uses) and
asserts what a user notices: messages, rows, the URL, and that htmx changes happen in place.
"In place" is proven with a marker on ``window``: a page load would wipe it.
"""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from flask import Flask
from playwright.sync_api import Locator, Page, expect

from opmail.db import get_session
from opmail.models import MailAccount, MailAlias, MailDomain, MailQuotaUsage, UserTwoFactor, utcnow
from opmail.passwords import verify_password
from tests.browser import save_screenshot
from tests.conftest import ADMIN_PASSWORD
from tests.helpers import add_account, add_domain, rows

pytestmark = pytest.mark.browser

ACCOUNTS = "/admin/accounts/"


# --- helpers --------------------------------------------------------------------------------------


def many_accounts(app: Flask, per_domain: dict[str, int]) -> list[str]:
    """``{"example.com": 30}`` → user00@example.com … user29@example.com (domains created too)."""
    emails = []
    for domain, count in per_domain.items():
        add_domain(app, domain)
        prefix = "user" if domain == "example.com" else "team"
        for n in range(count):
            email = f"{prefix}{n:02d}@{domain}"
            add_account(app, email)
            emails.append(email)
    return emails


def table_rows(page: Page) -> Locator:
    return page.locator("#opmail-accounts tbody tr[data-email]")


def row(page: Page, email: str) -> Locator:
    return page.locator(f'#opmail-accounts tr[data-email="{email}"]')


def toast(page: Page, text: str | re.Pattern) -> Locator:
    return page.locator("#opmail-toasts").get_by_text(text)


def mark_document(page: Page) -> None:
    """Tag the current document: if the marker survives, nothing reloaded the page."""
    page.evaluate("window.__marker = 1")


def assert_same_document(page: Page) -> None:
    assert page.evaluate("window.__marker") == 1, "the page reloaded (expected an in-place update)"


def account_column(app: Flask, column, email: str):
    found = rows(app, sa.select(column).where(MailAccount.email == email))
    return found[0][0] if found else None


def add_account_button(page: Page) -> Locator:
    # The toolbar button (an empty list offers a second "Add Account" link in the table).
    return page.get_by_role("link", name="Add Account").first


def stored_password(app: Flask, email: str) -> str:
    return account_column(app, MailAccount.password, email)


def follow(page: Page, link: Locator) -> None:
    """Click a link and wait for the new page to finish loading (htmx is set up by then).

    A click only waits for the navigation to start: an htmx control clicked before the page's
    deferred scripts ran would act as its no-JavaScript fallback (a plain link).
    """
    with page.expect_navigation():
        link.click()


def open_accounts(page: Page) -> None:
    page.goto(ACCOUNTS)
    expect(add_account_button(page)).to_be_visible()


# --- 1. Domains -----------------------------------------------------------------------------------


def test_add_a_domain_from_the_navbar(logged_in_page: Page, app: Flask) -> None:
    page = logged_in_page
    page.get_by_role("navigation").get_by_role("link", name="Domains", exact=True).click()
    expect(page).to_have_url(re.compile(r"/admin/domains/$"))
    expect(page.get_by_text("No domains yet: add the first one above.")).to_be_visible()

    page.get_by_label("Domain", exact=True).fill("Example.COM")
    page.get_by_role("button", name="Add Domain").click()

    expect(page.get_by_text("Domain example.com added.")).to_be_visible()
    domain_row = page.locator('tr[data-domain="example.com"]')
    expect(domain_row).to_be_visible()
    expect(domain_row.get_by_role("cell").first).to_have_text("example.com")  # stored lower-case
    expect(domain_row).to_contain_text("Active")
    assert rows(app, sa.select(MailDomain.domain)) == [("example.com",)]


# --- 2. Add Account -------------------------------------------------------------------------------


def test_add_an_account_and_land_on_its_page(logged_in_page: Page, app: Flask) -> None:
    add_domain(app, "example.com")
    page = logged_in_page
    page.get_by_role("navigation").get_by_role("link", name="Accounts", exact=True).click()
    add_account_button(page).click()
    expect(page.get_by_role("heading", name="Add Account")).to_be_visible()
    expect(page.get_by_label("Quota (MB)")).to_have_value("0")

    page.get_by_label("Email address").fill("jane@example.com")
    page.get_by_label("Password", exact=True).fill("mailbox-pass-1")
    page.get_by_label("Quota (MB)").fill("2048")
    page.get_by_role("button", name="Create Account").click()

    expect(page).to_have_url(re.compile(r"/admin/accounts/edit/\?id=\d+$"))
    expect(page.get_by_text(re.compile(r"Account jane@example\.com created\."))).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile("jane@example.com"))).to_be_visible()
    expect(page.get_by_label("Quota (MB)")).to_have_value("2048")
    assert account_column(app, MailAccount.quota_mb, "jane@example.com") == 2048
    stored = account_column(app, MailAccount.password, "jane@example.com")
    assert stored != "mailbox-pass-1" and verify_password("mailbox-pass-1", stored)


def test_add_account_for_a_missing_domain_links_to_domains(
    logged_in_page: Page, app: Flask
) -> None:
    page = logged_in_page
    page.goto(ACCOUNTS + "new/")
    page.get_by_label("Email address").fill("jane@example.net")
    page.get_by_label("Password", exact=True).fill("mailbox-pass-1")
    page.get_by_role("button", name="Create Account").click()

    expect(page.get_by_text("The domain example.net does not exist yet")).to_be_visible()
    page.get_by_role("link", name="Add example.net under Admin → Domains").click()
    expect(page.get_by_label("Domain", exact=True)).to_have_value("example.net")
    page.get_by_role("button", name="Add Domain").click()
    expect(page.get_by_text("Domain example.net added.")).to_be_visible()
    assert rows(app, sa.select(MailAccount.email)) == []


# --- 3.–4. Search and the domain filter -----------------------------------------------------------


def test_accounts_list_at_a_glance(logged_in_page: Page, app: Flask) -> None:
    many_accounts(app, {"example.com": 30, "other.org": 6})
    add_account(app, "big@other.org", quota_mb=100)
    add_account(app, "huge@other.org", quota_mb=2048)
    with app.app_context():
        db = get_session()
        db.add(MailQuotaUsage(email="big@other.org", bytes=95 * 1024 * 1024, messages=12))
        db.add(MailQuotaUsage(email="huge@other.org", bytes=1500 * 1024 * 1024, messages=900))
        db.add(UserTwoFactor(email="user01@example.com", secret="s", enabled_at=utcnow()))
        by_email = {a.email: a for a in db.scalars(sa.select(MailAccount))}
        by_email["user02@example.com"].last_synced_at = utcnow()
        by_email["user03@example.com"].is_active = False
        db.commit()
    page = logged_in_page
    open_accounts(page)

    for header in ("Email", "Domain", "Quota", "2FA", "Last Sync", "Status"):
        # The sorted column carries an arrow: "Email ▲".
        name = re.compile(rf"^{header}( [▲▼])?$")
        expect(page.get_by_role("columnheader", name=name)).to_be_visible()
    expect(table_rows(page)).to_have_count(38)
    expect(page.locator("[data-result-count]")).to_have_text("38 accounts")
    expect(row(page, "big@other.org")).to_contain_text("95.0 MB used (95 %)")
    expect(row(page, "huge@other.org")).to_contain_text("2.0 GB")
    expect(row(page, "user01@example.com").get_by_text("on", exact=True)).to_be_visible()
    expect(row(page, "user03@example.com")).to_contain_text("Suspended")
    save_screenshot(page, "accounts-list")


def test_search_narrows_the_table_in_place_and_keeps_the_query(
    logged_in_page: Page, app: Flask
) -> None:
    many_accounts(app, {"example.com": 30, "other.org": 6})
    page = logged_in_page
    open_accounts(page)
    expect(table_rows(page)).to_have_count(36)
    mark_document(page)

    search = page.get_by_label("Search by email address or domain")
    search.press_sequentially("team")

    expect(table_rows(page)).to_have_count(6)
    expect(page.locator("[data-result-count]")).to_have_text("6 accounts")
    expect(row(page, "team00@other.org")).to_be_visible()
    expect(row(page, "user00@example.com")).to_have_count(0)
    expect(page).to_have_url(re.compile(r"/admin/accounts/\?q=team(&|$)"))  # hx-push-url
    assert_same_document(page)

    # A domain is searchable too (prefix match), still without a page load.
    search.fill("other.")
    expect(page).to_have_url(re.compile(r"\?q=other\.(&|$)"))
    expect(table_rows(page)).to_have_count(6)
    search.fill("team")
    expect(page).to_have_url(re.compile(r"\?q=team(&|$)"))
    assert_same_document(page)

    page.reload()
    expect(page.get_by_label("Search by email address or domain")).to_have_value("team")
    expect(table_rows(page)).to_have_count(6)

    page.go_back()
    expect(page).to_have_url(re.compile(r"\?q=other\.(&|$)"))
    page.go_back()
    expect(page).to_have_url(re.compile(r"\?q=team(&|$)"))
    page.go_back()
    expect(page).to_have_url(re.compile(r"/admin/accounts/$"))
    expect(table_rows(page)).to_have_count(36)
    expect(page.locator("[data-result-count]")).to_have_text("36 accounts")


def test_search_keeps_the_sort_chosen_by_a_column_header(logged_in_page: Page, app: Flask) -> None:
    many_accounts(app, {"example.com": 3, "other.org": 3})
    page = logged_in_page
    open_accounts(page)
    mark_document(page)
    page.locator("#opmail-accounts thead").get_by_role("link", name="Domain").click()
    expect(page).to_have_url(re.compile(r"sort=domain"))
    page.locator("#opmail-accounts thead").get_by_role("link", name="Domain").click()  # descending
    expect(page).to_have_url(re.compile(r"sort=domain&dir=desc"))
    page.get_by_label("Search by email address or domain").press_sequentially("t")
    expect(page).to_have_url(re.compile(r"\?q=t&sort=domain&dir=desc$"))
    expect(table_rows(page).first).to_have_attribute("data-email", "team02@other.org")  # desc, ties newest first
    assert_same_document(page)


def test_search_with_no_match_says_so(logged_in_page: Page, app: Flask) -> None:
    many_accounts(app, {"example.com": 3})
    page = logged_in_page
    open_accounts(page)
    page.get_by_label("Search by email address or domain").press_sequentially("nobody")
    expect(page.get_by_text("No accounts match.")).to_be_visible()
    expect(page.locator("[data-result-count]")).to_have_text("0 accounts")


def test_domain_dropdown_shows_only_that_domains_rows(logged_in_page: Page, app: Flask) -> None:
    many_accounts(app, {"example.com": 30, "other.org": 6})
    page = logged_in_page
    open_accounts(page)
    mark_document(page)

    page.get_by_label("Domain", exact=True).select_option(label="other.org")

    expect(table_rows(page)).to_have_count(6)
    expect(page.locator("[data-result-count]")).to_have_text("6 accounts")
    for email in table_rows(page).evaluate_all("rows => rows.map(r => r.dataset.email)"):
        assert email.endswith("@other.org"), email
    expect(page).to_have_url(re.compile(r"[?&]domain=other\.org(&|$)"))
    assert_same_document(page)

    # The dropdown and the search box combine.
    page.get_by_label("Domain", exact=True).select_option(label="example.com")
    expect(table_rows(page)).to_have_count(30)
    page.get_by_label("Search by email address or domain").press_sequentially("user1")
    expect(table_rows(page)).to_have_count(10)  # user10 … user19
    expect(page).to_have_url(re.compile(r"q=user1"))
    expect(page).to_have_url(re.compile(r"domain=example\.com"))
    assert_same_document(page)

    page.get_by_label("Domain", exact=True).select_option(label="All domains")
    expect(table_rows(page)).to_have_count(10)  # the search alone: user10 … user19
    assert_same_document(page)


# --- 5.–7. Bulk actions ---------------------------------------------------------------------------


def test_bulk_suspend_three_accounts_in_place(logged_in_page: Page, app: Flask) -> None:
    emails = many_accounts(app, {"example.com": 30, "other.org": 6})
    chosen = ["user03@example.com", "user07@example.com", "team02@other.org"]
    page = logged_in_page
    open_accounts(page)
    mark_document(page)

    for email in chosen:
        page.get_by_label(f"Select {email}", exact=True).check()
    page.get_by_label("Bulk Actions").select_option(label="Suspend")
    page.get_by_role("button", name="Apply to selected").click()

    expect(toast(page, "3 accounts suspended.")).to_be_visible()
    for email in chosen:
        expect(row(page, email).get_by_text("Suspended", exact=True)).to_be_visible()
    expect(row(page, "user04@example.com").get_by_text("Active", exact=True)).to_be_visible()
    expect(page.locator("#opmail-accounts .badge", has_text="Suspended")).to_have_count(3)
    save_screenshot(page, "accounts-bulk-suspended")
    # The refreshed table starts with nothing selected.
    expect(page.locator('#opmail-accounts input[name="rowid"]:checked')).to_have_count(0)
    assert_same_document(page)
    expect(page).to_have_url(re.compile(r"/admin/accounts/$"))

    suspended = rows(app, sa.select(MailAccount.email).where(MailAccount.is_active.is_(False)))
    assert sorted(email for (email,) in suspended) == sorted(chosen)
    active = rows(app, sa.select(MailAccount.id).where(MailAccount.is_active.is_(True)))
    assert len(active) == len(emails) - 3


def test_bulk_action_keeps_the_search(logged_in_page: Page, app: Flask) -> None:
    many_accounts(app, {"example.com": 30, "other.org": 6})
    page = logged_in_page
    open_accounts(page)
    page.get_by_label("Search by email address or domain").press_sequentially("team")
    expect(table_rows(page)).to_have_count(6)

    page.get_by_label("Select team01@other.org", exact=True).check()
    page.get_by_label("Bulk Actions").select_option(label="Suspend")
    page.get_by_role("button", name="Apply to selected").click()

    expect(toast(page, "1 account suspended.")).to_be_visible()
    expect(row(page, "team01@other.org")).to_contain_text("Suspended")
    expect(table_rows(page)).to_have_count(6)  # still the search's rows, not the whole list


def test_select_all_ticks_every_row_on_the_page(logged_in_page: Page, app: Flask) -> None:
    many_accounts(app, {"example.com": 30, "other.org": 25})  # 55: two pages of 50
    page = logged_in_page
    open_accounts(page)
    boxes = page.locator('#opmail-accounts input[type="checkbox"][name="rowid"]')
    expect(boxes).to_have_count(50)
    expect(page.get_by_text("55 accounts · page 1 of 2")).to_be_visible()

    select_all = page.get_by_label("Select all accounts on this page")
    select_all.check()
    expect(page.locator('#opmail-accounts input[name="rowid"]:checked')).to_have_count(50)
    select_all.uncheck()
    expect(page.locator('#opmail-accounts input[name="rowid"]:checked')).to_have_count(0)

    select_all.check()
    page.get_by_label("Bulk Actions").select_option(label="Suspend")
    page.get_by_role("button", name="Apply to selected").click()
    expect(toast(page, "50 accounts suspended.")).to_be_visible()
    # "On this page" means it: the five on page 2 are untouched.
    assert len(rows(app, sa.select(MailAccount.id).where(MailAccount.is_active.is_(True)))) == 5


def test_bulk_edit_quota(logged_in_page: Page, app: Flask) -> None:
    many_accounts(app, {"example.com": 30, "other.org": 6})
    chosen = ["user10@example.com", "team05@other.org"]
    page = logged_in_page
    open_accounts(page)
    mark_document(page)

    bulk = page.get_by_label("Bulk Actions")
    quota = page.get_by_label("Quota (MB)")
    admin_password = page.get_by_label("Your admin password")
    # Each action shows only the input it needs.
    bulk.select_option(label="Delete")
    expect(admin_password).to_be_visible()
    expect(quota).to_be_hidden()
    save_screenshot(page, "accounts-bulk-delete-bar")
    bulk.select_option(label="Edit Quota")
    expect(quota).to_be_visible()
    expect(admin_password).to_be_hidden()

    for email in chosen:
        page.get_by_label(f"Select {email}", exact=True).check()
    quota.fill("500")
    page.get_by_role("button", name="Apply to selected").click()

    expect(toast(page, "2 accounts set to the new quota.")).to_be_visible()
    for email in chosen:
        expect(row(page, email).locator(".opmail-quota")).to_contain_text("500 MB")
    expect(row(page, "user11@example.com").locator(".opmail-quota")).to_contain_text("Unlimited")
    assert_same_document(page)
    # After the swap the bar still shows the right input.
    expect(page.get_by_label("Your admin password")).to_be_hidden()
    assert {account_column(app, MailAccount.quota_mb, email) for email in chosen} == {500}
    assert account_column(app, MailAccount.quota_mb, "user11@example.com") == 0


def test_bulk_with_nothing_selected_says_so(logged_in_page: Page, app: Flask) -> None:
    many_accounts(app, {"example.com": 3})
    page = logged_in_page
    open_accounts(page)
    page.get_by_label("Bulk Actions").select_option(label="Suspend")
    page.get_by_role("button", name="Apply to selected").click()
    expect(toast(page, "Select at least one account first.")).to_be_visible()
    assert rows(app, sa.select(MailAccount.id).where(MailAccount.is_active.is_(False))) == []


# --- 8. Reset Password ----------------------------------------------------------------------------


def test_reset_password_on_the_account_page(logged_in_page: Page, app: Flask) -> None:
    add_domain(app, "example.com")
    add_account(app, "jane@example.com", password="old-mailbox-pass", quota_mb=1024)
    page = logged_in_page
    open_accounts(page)
    page.get_by_role("link", name="jane@example.com", exact=True).click()
    expect(page.get_by_role("heading", name=re.compile("jane@example.com"))).to_be_visible()
    expect(page.get_by_role("heading", name="Reset Password")).to_be_visible()
    save_screenshot(page, "account-page")

    page.get_by_label("New Password").fill("new-mailbox-pass")
    page.get_by_label("Confirm Password").fill("new-mailbox-typo")
    page.get_by_role("button", name="Save Password").click()
    expect(page.get_by_text("The two passwords do not match.")).to_be_visible()
    expect(page.get_by_label("Confirm Password")).to_have_attribute("aria-invalid", "true")
    assert verify_password("old-mailbox-pass", stored_password(app, "jane@example.com"))

    page.get_by_label("New Password").fill("new-mailbox-pass")
    page.get_by_label("Confirm Password").fill("new-mailbox-pass")
    page.get_by_role("button", name="Save Password").click()
    expect(page.get_by_text("New password saved for jane@example.com.")).to_be_visible()
    expect(page.get_by_text("The two passwords do not match.")).to_have_count(0)
    assert verify_password("new-mailbox-pass", stored_password(app, "jane@example.com"))


# --- 9. Delete ------------------------------------------------------------------------------------


def test_delete_an_account_through_the_password_dialog(logged_in_page: Page, app: Flask) -> None:
    domain_id = add_domain(app, "example.com")
    add_account(app, "jane@example.com")
    add_account(app, "bob@example.com")
    with app.app_context():
        alias = MailAlias(
            domain_id=domain_id, alias_email="j@example.com", destination_email="jane@example.com"
        )
        get_session().add(alias)
        get_session().commit()
    page = logged_in_page
    open_accounts(page)
    follow(page, page.get_by_role("link", name="jane@example.com", exact=True))
    account_url = page.url
    mark_document(page)

    page.get_by_role("link", name="Delete", exact=True).click()
    dialog = page.get_by_role("dialog", name="Delete jane@example.com?")
    expect(dialog).to_be_visible()
    expect(page).to_have_url(account_url)
    assert_same_document(page)
    save_screenshot(page, "account-delete-dialog")

    dialog.get_by_label("Your admin password").fill("not my password")
    dialog.get_by_role("button", name="Delete account").click()
    expect(page.get_by_text("Wrong admin password: nothing was deleted.")).to_be_visible()
    save_screenshot(page, "account-delete-wrong-password")
    assert account_column(app, MailAccount.id, "jane@example.com") is not None

    page.get_by_role("dialog").get_by_label("Your admin password").fill(ADMIN_PASSWORD)
    page.get_by_role("dialog").get_by_role("button", name="Delete account").click()
    expect(page.get_by_text("Account jane@example.com deleted.")).to_be_visible()
    expect(page.get_by_text(re.compile(r"1 alias removed \(j@example\.com\)"))).to_be_visible()
    maildir = f"{app.config['MAILDIR_ROOT'].rstrip('/')}/example.com/jane/Maildir"
    expect(page.get_by_text(f"rm -rf {maildir}")).to_be_visible()
    save_screenshot(page, "account-deleted")
    assert account_column(app, MailAccount.id, "jane@example.com") is None
    assert rows(app, sa.select(MailAlias.id)) == []

    page.get_by_role("link", name="Back to accounts").click()
    expect(row(page, "bob@example.com")).to_be_visible()
    expect(row(page, "jane@example.com")).to_have_count(0)
    expect(page.locator("[data-result-count]")).to_have_text("1 account")


# --- 10. Keyboard only ----------------------------------------------------------------------------


def tab_to(page: Page, target: Locator, limit: int = 40) -> None:
    """Press Tab until ``target`` has the focus (fails if it is not reachable by Tab)."""
    for _ in range(limit):
        if target.evaluate("element => element === document.activeElement"):
            return
        page.keyboard.press("Tab")
    pytest.fail(f"{target} is not reachable with Tab")


def test_add_account_with_the_keyboard_only(logged_in_page: Page, app: Flask) -> None:
    add_domain(app, "example.com")
    page = logged_in_page
    open_accounts(page)

    tab_to(page, add_account_button(page))
    page.keyboard.press("Enter")
    email = page.get_by_label("Email address")
    expect(email).to_be_visible()

    tab_to(page, email)
    page.keyboard.type("kim@example.com")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password", exact=True)).to_be_focused()
    page.keyboard.type("mailbox-pass-1")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Quota (MB)")).to_be_focused()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type("250")
    page.keyboard.press("Enter")

    expect(page.get_by_text(re.compile(r"Account kim@example\.com created\."))).to_be_visible()
    assert account_column(app, MailAccount.quota_mb, "kim@example.com") == 250
