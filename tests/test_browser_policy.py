"""The password policy and the domain limits in a real browser: Generate, a too-short password, a
domain's page and a limit's refusal, as an admin meets them (at 1366 and 390 px wide)."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from playwright.sync_api import Page, expect

from opmail.models import MailAccount, MailDomain
from opmail.passwords import verify_password
from tests.browser import save_screenshot
from tests.helpers import add_account, add_domain, rows

pytestmark = pytest.mark.browser

WIDTHS = {"wide": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}


def stored_password(app, email: str) -> str:
    return rows(app, sa.select(MailAccount.password).where(MailAccount.email == email))[0][0]


@pytest.mark.parametrize("width", WIDTHS)
def test_generate_fills_and_shows_a_password_that_is_stored(app, logged_in_page: Page, width):
    page = logged_in_page
    page.set_viewport_size(WIDTHS[width])
    add_domain(app)
    page.goto("/admin/accounts/new/")
    page.get_by_label("Email address").fill("jane@example.com")
    shown = page.locator("#password-generated-text")
    expect(shown).to_be_hidden()
    page.get_by_role("button", name="Generate a password").click()
    expect(shown).to_be_visible()
    password = shown.text_content()
    assert re.fullmatch(r"[A-Za-z0-9]{20}", password)
    expect(page.get_by_label("Password", exact=True)).to_have_value(password)
    expect(page.get_by_role("button", name="Copy")).to_be_visible()
    save_screenshot(page, f"policy-generate-{width}")
    # A second click gives another one, in the field and on screen alike.
    page.get_by_role("button", name="Generate a password").click()
    assert shown.text_content() != password
    password = shown.text_content()
    page.get_by_role("button", name="Create Account").click()
    expect(page.get_by_text("Account jane@example.com created.")).to_be_visible()
    # What Dovecot checks at login: the shown password against the stored hash.
    assert verify_password(password, stored_password(app, "jane@example.com"))
    expect(page.locator("#password-generated-text")).to_have_count(0)  # not shown again


def test_reset_password_generate_fills_both_fields(app, logged_in_page: Page):
    page = logged_in_page
    add_domain(app)
    jane = add_account(app, "jane@example.com")
    page.goto(f"/admin/accounts/edit/?id={jane}")
    page.get_by_role("button", name="Generate a password").click()
    password = page.locator("#new_password-generated-text").text_content()
    expect(page.get_by_label("New Password")).to_have_value(password)
    expect(page.get_by_label("Confirm Password")).to_have_value(password)
    page.get_by_role("button", name="Save Password").click()
    expect(page.get_by_text("New password saved for jane@example.com.")).to_be_visible()
    assert verify_password(password, stored_password(app, "jane@example.com"))


def test_a_too_short_password_says_how_long_it_must_be(app, logged_in_page: Page):
    page = logged_in_page
    add_domain(app)
    page.goto("/admin/accounts/new/")
    expect(page.get_by_text("at least 10 characters", exact=False).first).to_be_visible()  # said up front
    page.get_by_label("Email address").fill("jane@example.com")
    page.get_by_label("Password", exact=True).fill("short")
    page.get_by_role("button", name="Create Account").click()
    expect(page.locator("#password-errors")).to_have_text("The password must be at least 10 characters long (it has 5).")
    expect(page.get_by_label("Password", exact=True)).to_be_focused()
    assert rows(app, sa.select(MailAccount.id)) == []
    save_screenshot(page, "policy-too-short")


@pytest.mark.parametrize("width", WIDTHS)
def test_a_domain_limit_set_on_its_page_refuses_the_next_account(app, logged_in_page: Page, width):
    page = logged_in_page
    page.set_viewport_size(WIDTHS[width])
    add_domain(app)
    add_account(app, "a@example.com")
    page.goto("/admin/domains/")
    page.get_by_role("link", name="example.com").click()
    page.get_by_label("Maximum mailboxes").fill("1")
    page.get_by_label("Default quota for new mailboxes (MB)").fill("256")
    page.get_by_role("button", name="Save limits").click()
    expect(page.get_by_text("Limits of example.com saved.")).to_be_visible()
    expect(page.get_by_label("Maximum mailboxes")).to_have_value("1")
    save_screenshot(page, f"policy-domain-page-{width}")
    assert rows(app, sa.select(MailDomain.max_accounts, MailDomain.default_quota_mb)) == [(1, 256)]
    page.goto("/admin/domains/")
    expect(page.locator('tr[data-domain="example.com"] td[data-use="accounts"]')).to_have_text("1 / 1")
    save_screenshot(page, f"policy-domains-{width}")
    page.goto("/admin/accounts/new/")
    page.get_by_label("Email address").fill("b@example.com")
    page.get_by_role("button", name="Generate a password").click()
    page.get_by_role("button", name="Create Account").click()
    expect(page.locator("#email-errors")).to_have_text(
        "Over the domain's limit: example.com may have at most 1 mailbox and has 1."
        " Raise the limit on the domain's page, or delete a mailbox first."
    )
    assert rows(app, sa.select(MailAccount.email)) == [("a@example.com",)]
    save_screenshot(page, f"policy-limit-refused-{width}")
