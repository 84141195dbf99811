"""The admin as a daily tool (issue 16): one browser test per thing a new admin tripped over, at a
laptop's 1366x900 and, for the phone layout, 390x844. Each asserts what the admin notices."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from flask import Flask
from playwright.sync_api import Page, expect

from opmail import demo
from opmail.db import get_session
from opmail.models import (
    AdminEvent,
    MailAccount,
    MailAutoresponder,
    MailDomain,
    MailGroup,
    MailQuotaUsage,
    UserTwoFactor,
    utcnow,
)
from opmail.passwords import hash_password
from opmail.rules import autoresponders, groups
from tests.conftest import ADMIN_PASSWORD
from tests.helpers import add_account, add_domain, rows

pytestmark = pytest.mark.browser

ACCOUNTS = "/admin/accounts/"
LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
MB = 1024 * 1024


@pytest.fixture
def admin_page(logged_in_page: Page) -> Page:
    logged_in_page.set_viewport_size(LAPTOP)
    return logged_in_page


def open_list(page: Page, url: str = ACCOUNTS) -> None:
    page.goto(url)
    page.wait_for_load_state("load")
    page.wait_for_function("window.htmx !== undefined")


def table_emails(page: Page) -> list[str]:
    return page.locator("#opmail-accounts tbody tr[data-email]").evaluate_all(
        "rows => rows.map(r => r.dataset.email)"
    )


def toast(page: Page, text: str | re.Pattern):
    return page.locator("#opmail-toasts").get_by_text(text)


def three_accounts(app: Flask) -> None:
    add_domain(app, "example.com")
    for email in ("alice@example.com", "bob@example.com", "carol@example.com"):
        add_account(app, email, quota_mb=100)
    with app.app_context():
        db = get_session()
        db.execute(sa.update(MailAccount).where(MailAccount.email == "carol@example.com").values(is_active=False))
        db.commit()


# --- 1. Back/Forward: the filter form shows what the table shows --------------------------------------


def test_back_and_forward_set_the_search_box_and_status_from_the_address(admin_page: Page, app: Flask) -> None:
    three_accounts(app)
    page = admin_page
    open_list(page)
    search, status = page.locator("#opmail-q"), page.locator("#opmail-status")

    search.fill("bo")
    expect(page).to_have_url(re.compile(r"\?q=bo$"))
    assert table_emails(page) == ["bob@example.com"]
    search.fill("")
    expect(page).to_have_url(re.compile(r"/admin/accounts/$"))
    status.select_option("suspended")
    expect(page).to_have_url(re.compile(r"status=suspended"))
    expect(page.locator("#opmail-accounts tbody tr[data-email]")).to_have_count(1)
    assert table_emails(page) == ["carol@example.com"]

    page.go_back()
    expect(page).to_have_url(re.compile(r"/admin/accounts/$"))
    expect(page.locator("#opmail-accounts tbody tr[data-email]")).to_have_count(3)
    expect(status).to_have_value("")
    expect(search).to_have_value("")

    page.go_back()
    expect(page).to_have_url(re.compile(r"\?q=bo$"))
    expect(page.locator("#opmail-accounts tbody tr[data-email]")).to_have_count(1)
    expect(search).to_have_value("bo")
    expect(status).to_have_value("")

    page.go_forward()
    page.go_forward()
    expect(page).to_have_url(re.compile(r"status=suspended"))
    expect(status).to_have_value("suspended")
    expect(search).to_have_value("")
    assert table_emails(page) == ["carol@example.com"]


# --- 2. Destructive one-click actions ask first --------------------------------------------------------


def answer_next_dialog(page: Page, accept: bool) -> list[str]:
    asked: list[str] = []

    def answer(dialog) -> None:
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", answer)
    return asked


def test_disabling_a_domain_and_deleting_a_group_or_autoresponder_ask_first(admin_page: Page, app: Flask) -> None:
    add_domain(app, "example.com")
    add_account(app, "jane@example.com")
    add_account(app, "bob@example.com")
    with app.app_context():
        groups.save_group(None, "Staff", None, "staff@example.com")
        autoresponders.create_autoresponder(
            "jane@example.com", autoresponders.AutoresponderInput("Away", "Back Monday.", None, None, True)
        )
    page = admin_page

    open_list(page, "/admin/domains/")
    row = page.locator('tr[data-domain="example.com"]')
    asked = answer_next_dialog(page, accept=False)
    row.get_by_role("button", name="Disable").click()
    expect(row).to_contain_text("Active")
    assert asked == ["Disable the domain example.com? Its 2 mailboxes will stop logging in (IMAP, POP3, SMTP)."]
    assert rows(app, sa.select(MailDomain.is_active)) == [(True,)]
    answer_next_dialog(page, accept=True)
    row.get_by_role("button", name="Disable").click()
    expect(row).to_contain_text("Disabled")
    assert rows(app, sa.select(MailDomain.is_active)) == [(False,)]
    # Turning it back on loses nothing: no question.
    row.get_by_role("button", name="Enable").click()
    expect(row).to_contain_text("Active")

    open_list(page, "/admin/groups/")
    asked = answer_next_dialog(page, accept=False)
    page.locator('tr[data-group="Staff"]').get_by_role("button", name="Delete").click()
    assert asked and asked[0].startswith("Delete the group Staff?")
    expect(page.locator('tr[data-group="Staff"]')).to_be_visible()
    assert rows(app, sa.select(MailGroup.name)) == [("Staff",)]
    answer_next_dialog(page, accept=True)
    page.locator('tr[data-group="Staff"]').get_by_role("button", name="Delete").click()
    expect(page.get_by_text("Group Staff deleted")).to_be_visible()
    assert rows(app, sa.select(MailGroup.name)) == []

    open_list(page, "/admin/autoresponders/")
    asked = answer_next_dialog(page, accept=False)
    page.locator("tr[data-autoresponder]").get_by_role("button", name="Delete").click()
    assert asked == ["Delete the autoresponder of jane@example.com (Away)?"]
    expect(page.locator("tr[data-autoresponder]")).to_have_count(1)
    answer_next_dialog(page, accept=True)
    page.locator("tr[data-autoresponder]").get_by_role("button", name="Delete").click()
    expect(page.get_by_text("Autoresponder for jane@example.com deleted.")).to_be_visible()
    assert rows(app, sa.select(MailAutoresponder.id)) == []


# --- 3. A refused bulk action keeps the ticked rows, and says what is missing ---------------------------


def test_a_refused_bulk_action_keeps_the_selection_and_names_what_is_missing(admin_page: Page, app: Flask) -> None:
    three_accounts(app)
    page = admin_page
    open_list(page)
    page.get_by_label("Select alice@example.com").check()
    page.get_by_label("Select bob@example.com").check()
    page.get_by_label("Quota (MB)").fill("abc")
    page.get_by_role("button", name="Apply to selected").click()
    expect(toast(page, re.compile("whole number of MB"))).to_be_visible()
    expect(page.get_by_label("Select alice@example.com")).to_be_checked()
    expect(page.get_by_label("Select bob@example.com")).to_be_checked()
    expect(page.get_by_label("Select carol@example.com")).not_to_be_checked()
    expect(page.get_by_label("Quota (MB)")).to_have_value("abc")  # to correct, not to retype
    assert rows(app, sa.select(MailAccount.quota_mb).distinct()) == [(100,)]

    page.locator("#opmail-bulk-action").select_option("delete")
    page.get_by_role("button", name="Apply to selected").click()
    expect(toast(page, "Enter your admin password.")).to_be_visible()
    expect(page.get_by_label("Select bob@example.com")).to_be_checked()
    expect(page.locator("#opmail-bulk-action")).to_have_value("delete")
    expect(page.get_by_label("Your admin password")).to_be_visible()
    assert len(rows(app, sa.select(MailAccount.id))) == 3

    for box in ("alice", "bob"):
        page.get_by_label(f"Select {box}@example.com").uncheck()
    for action in ("quota", "suspend", "delete"):
        page.locator("#opmail-bulk-action").select_option(action)
        page.locator("#opmail-toasts").evaluate("box => box.replaceChildren()")
        page.get_by_role("button", name="Apply to selected").click()
        expect(toast(page, "Select at least one account first.")).to_be_visible()


# --- 4. Usage over the quota shows its real share ------------------------------------------------------


def test_usage_over_the_quota_shows_its_share_in_the_list_and_on_the_account_page(admin_page: Page, app: Flask) -> None:
    add_domain(app, "example.com")
    add_account(app, "full@example.com", quota_mb=100)
    add_account(app, "half@example.com", quota_mb=100)
    with app.app_context():
        db = get_session()
        db.add(MailQuotaUsage(email="full@example.com", bytes=210 * MB, messages=3))
        db.add(MailQuotaUsage(email="half@example.com", bytes=50 * MB, messages=3))
        db.commit()
    page = admin_page
    open_list(page)
    full = page.locator('tr[data-email="full@example.com"] [data-usage]')
    expect(full).to_have_text("210.0 MB used (210 %) · over quota")
    expect(full).to_have_class(re.compile("opmail-over-quota"))
    expect(page.locator('tr[data-email="half@example.com"] [data-usage]')).to_have_text("50.0 MB used (50 %)")
    bar = page.locator('tr[data-email="full@example.com"] .progress-bar')
    expect(bar).to_have_class(re.compile("bg-danger"))

    page.get_by_role("link", name="full@example.com", exact=True).click()
    usage = page.get_by_role("group", name="Mailbox usage")
    expect(usage).to_contain_text("quota 100 MB")
    expect(usage).to_contain_text("210.0 MB used (210 %) · over quota")


# --- 5. The delete dialog stays a dialog; the page after a delete is a redirect --------------------------


def test_the_delete_dialog_stays_and_the_result_survives_a_reload(admin_page: Page, app: Flask) -> None:
    add_domain(app, "example.com")
    jane = add_account(app, "jane@example.com")
    page = admin_page
    open_list(page, f"{ACCOUNTS}edit/?id={jane}")
    page.get_by_role("link", name="Delete", exact=True).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Delete jane@example.com?")

    dialog.get_by_role("button", name="Delete account").click()
    expect(page.get_by_role("dialog").get_by_text("Enter your admin password.")).to_be_visible()
    expect(page.get_by_role("dialog")).to_contain_text("Delete jane@example.com?")
    page.get_by_role("dialog").get_by_label("Your admin password").fill("not it")
    page.get_by_role("dialog").get_by_role("button", name="Delete account").click()
    expect(page.get_by_role("dialog").get_by_text("Wrong admin password: nothing was deleted.")).to_be_visible()
    expect(page.get_by_role("dialog")).to_contain_text("Delete jane@example.com?")
    expect(page).to_have_url(re.compile(rf"/edit/\?id={jane}$"))  # still the account page
    assert rows(app, sa.select(MailAccount.email)) == [("jane@example.com",)]

    page.get_by_role("dialog").get_by_label("Your admin password").fill(ADMIN_PASSWORD)
    page.get_by_role("dialog").get_by_role("button", name="Delete account").click()
    expect(page).to_have_url(re.compile(r"/admin/accounts/deleted/$"))
    expect(page.get_by_text("Account jane@example.com deleted.")).to_be_visible()
    posts: list[str] = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)
    page.reload()  # no "resend the form?" and nothing posted again
    expect(page.get_by_text("Account jane@example.com deleted.")).to_be_visible()
    assert posts == []
    assert rows(app, sa.select(MailAccount.email)) == []


# --- 6. One number format; no dangling colon; the audit log only records real changes ----------------


def test_numbers_read_the_same_everywhere_and_the_log_holds_only_real_changes(admin_page: Page, app: Flask) -> None:
    with app.app_context():
        demo.seed_demo(1200, 1, hash_password("demo pass 1", "BLF-CRYPT", bcrypt_rounds=4))
        domain = get_session().scalar(sa.select(MailDomain.domain))
    active = len(rows(app, sa.select(MailAccount.id).where(MailAccount.is_active)))
    page = admin_page
    open_list(page, "/admin/domains/")
    expect(page.locator(f'tr[data-domain="{domain}"] td').nth(1)).to_have_text("1,200")
    open_list(page, "/admin/")
    expect(page.locator('[data-figure="active"]')).to_have_text(f"{active:,}")

    # Deleting an empty domain: "0 accounts", no colon after it.
    add_domain(app, "empty.org")
    empty = rows(app, sa.select(MailDomain.id).where(MailDomain.domain == "empty.org"))[0][0]
    open_list(page, f"/admin/domains/delete/?id={empty}")
    page.get_by_label("Your admin password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Delete domain").click()
    expect(page.get_by_text("Domain empty.org deleted.")).to_be_visible()
    expect(page.locator("li").filter(has_text=re.compile(r"^\s*\d+ accounts?\b"))).to_have_text("0 accounts")

    # Saving the account page unchanged leaves no entry; a new display name shows old → new.
    add_domain(app, "example.com")
    jane = add_account(app, "jane@example.com", quota_mb=100)
    before = len(rows(app, sa.select(AdminEvent.id)))
    open_list(page, f"{ACCOUNTS}edit/?id={jane}")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Account saved.")).to_be_visible()
    assert len(rows(app, sa.select(AdminEvent.id))) == before
    page.get_by_label("Display name").fill("Jane Doe")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Account saved.")).to_be_visible()
    open_list(page, "/admin/audit/")
    expect(page.get_by_text("Display name: — → Jane Doe")).to_be_visible()
    expect(page.get_by_text(re.compile(r"Status: active → active|Quota: 100 MB → 100 MB"))).to_have_count(0)


# --- 7. Toasts can be dismissed and never cover the table; Force disable 2FA is readable ---------------


CONTRAST = """el => {
  const rgb = s => s.match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(Number);
  const lum = c => { const [r, g, b] = c.map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
                     return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  let bg = el, color = getComputedStyle(el).backgroundColor;
  while (bg && (color === "rgba(0, 0, 0, 0)" || color === "transparent")) { bg = bg.parentElement; color = bg ? getComputedStyle(bg).backgroundColor : "rgb(255, 255, 255)"; }
  const [a, b] = [lum(rgb(getComputedStyle(el).color)), lum(rgb(color))];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


def boxes_overlap(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"] and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]


def test_toasts_can_be_dismissed_and_never_cover_the_table(admin_page: Page, app: Flask) -> None:
    three_accounts(app)
    page = admin_page
    open_list(page)
    page.get_by_label("Select alice@example.com").check()
    page.locator("#opmail-bulk-action").select_option("suspend")
    page.get_by_role("button", name="Apply to selected").click()
    message = toast(page, "1 account suspended.")
    expect(message).to_be_visible()
    toast_box = page.locator("#opmail-toasts .alert").bounding_box()
    table_box = page.locator("#opmail-accounts-table").bounding_box()
    assert not boxes_overlap(toast_box, table_box)
    page.get_by_role("button", name="Dismiss message").click()
    expect(message).to_have_count(0)

    page.get_by_label("Select bob@example.com").check()
    page.locator("#opmail-bulk-action").select_option("suspend")
    page.get_by_role("button", name="Apply to selected").click()
    expect(toast(page, "1 account suspended.")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#opmail-toasts .alert")).to_have_count(0)


def test_the_force_disable_2fa_button_meets_wcag_aa_contrast(admin_page: Page, app: Flask) -> None:
    add_domain(app, "example.com")
    jane = add_account(app, "jane@example.com")
    with app.app_context():
        get_session().add(UserTwoFactor(email="jane@example.com", secret="s", enabled_at=utcnow()))
        get_session().commit()
    page = admin_page
    open_list(page, f"{ACCOUNTS}edit/?id={jane}")
    button = page.get_by_role("button", name="Force disable 2FA")
    expect(button).to_be_visible()
    assert button.evaluate(CONTRAST) >= 4.5


# --- 8. A phone: the list fits 390 px, the brand stays ------------------------------------------------


def test_the_accounts_list_fits_a_phone(logged_in_page: Page, app: Flask) -> None:
    add_domain(app, "example.com")
    add_account(app, "someone.with.a.long.name@example.com", quota_mb=100)
    add_account(app, "bob@example.com", quota_mb=100)
    with app.app_context():
        get_session().add(MailQuotaUsage(email="bob@example.com", bytes=42 * MB, messages=3))
        get_session().commit()
    page = logged_in_page
    page.set_viewport_size(PHONE)
    open_list(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    wrap = page.locator("#opmail-accounts .table-responsive")
    assert wrap.evaluate("w => w.scrollWidth <= w.clientWidth")
    row = page.locator('tr[data-email="bob@example.com"]')
    for cell in (row.get_by_role("link", name="bob@example.com"), row.locator("[data-usage]"), row.get_by_text("Active")):
        expect(cell).to_be_visible()
        box = cell.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    expect(row.locator("[data-usage]")).to_have_text("42.0 MB used (42 %)")
    expect(page.get_by_role("columnheader", name="Domain")).to_be_hidden()
    expect(page.get_by_role("columnheader", name="Last Sync")).to_be_hidden()
    brand = page.locator(".navbar-brand")
    expect(brand).to_be_visible()
    assert brand.bounding_box()["x"] + brand.bounding_box()["width"] <= PHONE["width"]


# --- 9. Keyboard: one stop per row besides its checkbox, a skip link, the bulk bar close by --------------


def test_the_accounts_table_by_keyboard(admin_page: Page, app: Flask) -> None:
    three_accounts(app)
    page = admin_page
    open_list(page)
    stops = page.locator('tr[data-email="alice@example.com"]').evaluate(
        """row => [...row.querySelectorAll("a, button, input, select, textarea, [tabindex]")]
                 .filter(el => el.tabIndex >= 0 && !el.disabled).length"""
    )
    assert stops == 2  # its checkbox and its address

    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to the accounts table")
    expect(skip).to_be_focused()
    expect(skip).to_be_visible()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Select all accounts on this page")).to_be_focused()

    page.get_by_label("Select carol@example.com").focus()
    page.keyboard.press("Space")
    expect(page.get_by_label("Select carol@example.com")).to_be_checked()
    page.keyboard.press("b")  # back to the Bulk Actions, not 2 stops per row back up
    expect(page.locator("#opmail-bulk-action")).to_be_focused()
    page.locator("#opmail-bulk-action").select_option("unsuspend")
    page.keyboard.press("Tab")  # Unsuspend needs no extra field: the button is next
    expect(page.get_by_role("button", name="Apply to selected")).to_be_focused()
    page.keyboard.press("Enter")
    expect(toast(page, "1 account unsuspended.")).to_be_visible()

    # The second skip link goes straight to the Bulk Actions.
    open_list(page)
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to Bulk Actions")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#opmail-bulk-action")).to_be_focused()


# --- 10. A favicon, no 404 ----------------------------------------------------------------------------


def test_every_page_has_a_favicon_and_no_request_fails(page: Page, app: Flask, admin_user: str) -> None:
    failed: list[str] = []
    page.on("response", lambda response: failed.append(f"{response.status} {response.url}") if response.status >= 400 else None)
    page.set_viewport_size(LAPTOP)
    page.goto("/admin/login")
    page.get_by_label("Username").fill(admin_user)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/admin/")
    for url in ("/admin/", ACCOUNTS, "/admin/domains/", "/admin/sync-log/", "/admin/audit/"):
        page.goto(url)
        icon = page.locator('link[rel="icon"]').get_attribute("href")
        assert icon and icon.endswith("favicon.svg")
        page.wait_for_load_state("networkidle")
    answer = page.request.get(icon)
    assert answer.status == 200 and answer.headers["content-type"].startswith("image/svg+xml")
    assert failed == []


# --- 11. The Sync Log in standalone mode ----------------------------------------------------------------


def test_the_sync_log_says_the_webhook_is_off_and_how_to_turn_it_on(admin_page: Page, app: Flask) -> None:
    assert not app.config["MAIL_SYNC_SECRET"]
    page = admin_page
    open_list(page, "/admin/sync-log/")
    notice = page.locator("[data-webhook-off]")
    expect(notice).to_contain_text("The Panel webhook is off")
    expect(notice).to_contain_text(".venv/bin/flask --app app opmail sync-secret")
    expect(notice).to_contain_text("MAIL_SYNC_SECRET")
    expect(page.get_by_text("There are no items in the table")).to_have_count(0)
