"""Domain admins in a real browser: a server admin adds one for two domains under Admin → Admins;
that admin logs in, sees only those domains' accounts, bulk-suspends some, and cannot open another
domain's account by typing its URL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from playwright.sync_api import Page, expect

from opmail.models import MailAccount
from tests.browser import save_screenshot
from tests.helpers import add_account, add_domain, rows

pytestmark = pytest.mark.browser

ERIN_PASSWORD = "erin's long password"


def test_a_domain_admin_made_in_the_browser_manages_only_its_domains(app, logged_in_page: Page):
    page = logged_in_page
    for domain in ("alpha.example", "beta.example", "gamma.example"):
        add_domain(app, domain)
    add_account(app, "ann@alpha.example")
    add_account(app, "bea@beta.example")
    gus = add_account(app, "gus@gamma.example")

    page.goto("/admin/admins/")
    page.get_by_label("Name").fill("erin")
    page.get_by_label("Password").fill(ERIN_PASSWORD)
    page.get_by_label("Domains").fill("alpha.example, beta.example")
    page.get_by_label("Require 2FA").uncheck()
    page.get_by_role("button", name="Add Domain Admin").click()
    expect(page.get_by_text("Domain admin erin added.")).to_be_visible()
    expect(page.locator('tr[data-admin="erin"]')).to_contain_text("alpha.example, beta.example")
    save_screenshot(page, "domain-admins-list")
    page.goto("/admin/domains/")
    expect(page.locator('tr[data-domain="alpha.example"] [data-admins]')).to_have_text("erin")
    expect(page.locator('tr[data-domain="gamma.example"] [data-admins]')).to_have_text("—")

    # Erin, in a browser of her own.
    page.context.clear_cookies()
    page.goto("/admin/login")
    page.get_by_label("Username").fill("erin")
    page.get_by_label("Password").fill(ERIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/admin/")
    expect(page.get_by_role("link", name="Dovecot")).to_have_count(0)
    expect(page.get_by_role("link", name="Admins")).to_have_count(0)
    page.goto("/admin/accounts/")
    table = page.locator("#opmail-accounts-table")
    expect(table).to_contain_text("ann@alpha.example")
    expect(table).to_contain_text("bea@beta.example")
    expect(table).not_to_contain_text("gus@gamma.example")
    page.get_by_label("Select ann@alpha.example").check()
    page.get_by_label("Select bea@beta.example").check()
    page.locator("#opmail-bulk-action").select_option("suspend")
    page.get_by_role("button", name="Apply to selected").click()
    expect(page.locator("#opmail-toasts").get_by_text("2 accounts suspended.")).to_be_visible()
    save_screenshot(page, "domain-admin-accounts")
    suspended = {email for email, active in rows(app, sa.select(MailAccount.email, MailAccount.is_active)) if not active}
    assert suspended == {"ann@alpha.example", "bea@beta.example"}

    response = page.goto(f"/admin/accounts/edit/?id={gus}")
    assert response.status == 404
    response = page.goto("/admin/dovecot/")
    assert response.status == 403
