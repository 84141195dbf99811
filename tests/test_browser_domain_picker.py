"""The domain picker in a real browser (issue 19): above 200 domains the lists' domain filter is a
typeahead. Typing part of a name offers the matches, the keyboard picks one, the list narrows in
place, the URL keeps the domain by name, and Back/Forward bring each state back."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from opmail.db import get_session
from opmail.models import MailAlias, MailDomain
from opmail.queries import DOMAIN_SELECT_MAX
from tests.helpers import add_account, add_domain

pytestmark = pytest.mark.browser

ACCOUNTS = "/admin/accounts/"
ALIASES = "/admin/aliases/"


@pytest.fixture
def crowded(app: Flask) -> None:
    """More domains than the dropdown takes (zz0000.example …), and accounts in three of them."""
    with app.app_context():
        db = get_session()
        db.add_all(MailDomain(domain=f"zz{n:04}.example") for n in range(DOMAIN_SELECT_MAX + 50))
        db.commit()
    add_domain(app, "shop-north.example")
    add_domain(app, "shop-south.example")
    add_domain(app, "bücher.de")
    for n in range(4):
        add_account(app, f"north{n}@shop-north.example")
    for n in range(3):
        add_account(app, f"south{n}@shop-south.example")
    add_account(app, "anna@bücher.de")


def rows(page: Page):
    return page.locator("#opmail-accounts tbody tr[data-email]")


def picker(page: Page):
    return page.get_by_role("combobox", name="Domain")


def test_pick_a_domain_by_typing_part_of_its_name(logged_in_page: Page, crowded: None) -> None:
    page = logged_in_page
    page.goto(ACCOUNTS)
    expect(rows(page)).to_have_count(8)
    page.evaluate("window.__marker = 1")
    field = picker(page)
    expect(field).to_have_attribute("aria-expanded", "false")

    field.click()
    field.press_sequentially("shop-s")
    listbox = page.get_by_role("listbox", name="Domains")
    expect(listbox.get_by_role("option")).to_have_text(["shop-south.example"])
    expect(field).to_have_attribute("aria-expanded", "true")
    field.press("Backspace")  # "shop-": both shops, in order
    expect(listbox.get_by_role("option")).to_have_text(["shop-north.example", "shop-south.example"])

    field.press("ArrowDown")
    field.press("ArrowDown")
    expect(listbox.get_by_role("option", name="shop-south.example")).to_have_attribute("aria-selected", "true")
    active = listbox.get_by_role("option", name="shop-south.example").get_attribute("id")
    expect(field).to_have_attribute("aria-activedescendant", active)
    field.press("Enter")

    expect(listbox).to_be_hidden()
    expect(field).to_have_value("shop-south.example")
    expect(rows(page)).to_have_count(3)
    for email in rows(page).evaluate_all("rows => rows.map(r => r.dataset.email)"):
        assert email.endswith("@shop-south.example"), email
    expect(page).to_have_url(re.compile(r"/admin/accounts/\?domain=shop-south\.example$"))
    assert page.evaluate("window.__marker") == 1, "picking reloaded the page"

    # A second pick, then Back: the first domain, shown in the picker too (htmx restores a snapshot
    # of the page taken as the second pick swapped in, whose field still said something else).
    field.click()
    field.fill("")  # emptied: every domain at once
    expect(rows(page)).to_have_count(8)
    field.press_sequentially("shop-n")
    listbox.get_by_role("option", name="shop-north.example").click()
    expect(rows(page)).to_have_count(4)
    expect(page).to_have_url(re.compile(r"\?domain=shop-north\.example$"))
    page.go_back()  # the emptied field's "all domains"
    expect(page).to_have_url(re.compile(r"/admin/accounts/$"))
    expect(picker(page)).to_have_value("")
    expect(rows(page)).to_have_count(8)
    page.go_back()
    expect(page).to_have_url(re.compile(r"\?domain=shop-south\.example$"))
    expect(picker(page)).to_have_value("shop-south.example")
    expect(rows(page)).to_have_count(3)
    page.go_forward()
    page.go_forward()
    expect(page).to_have_url(re.compile(r"\?domain=shop-north\.example$"))
    expect(picker(page)).to_have_value("shop-north.example")
    expect(rows(page)).to_have_count(4)
    assert page.evaluate("window.__marker") == 1, "Back/Forward reloaded the page"

    # Away to another page and Back: the filtered list, the picker showing the domain.
    page.get_by_role("link", name="Domains").first.click()
    expect(page).to_have_url(re.compile(r"/admin/domains/"))
    page.go_back()
    expect(page).to_have_url(re.compile(r"\?domain=shop-north\.example$"))
    expect(picker(page)).to_have_value("shop-north.example")
    expect(rows(page)).to_have_count(4)

    # A URL opened directly (a refresh, a bookmark) shows the same.
    page.reload()
    expect(picker(page)).to_have_value("shop-north.example")
    expect(rows(page)).to_have_count(4)

    # The other filters keep the domain.
    page.get_by_label("Search by email address or domain").press_sequentially("north1")
    expect(rows(page)).to_have_count(1)
    expect(page).to_have_url(re.compile(r"\?q=north1&domain=shop-north\.example$"))


def test_escape_and_leaving_the_field_keep_the_domain_and_emptying_it_shows_all(
    logged_in_page: Page, crowded: None
) -> None:
    page = logged_in_page
    page.goto(ACCOUNTS + "?domain=shop-north.example")
    field = picker(page)
    expect(field).to_have_value("shop-north.example")
    expect(rows(page)).to_have_count(4)

    field.fill("zz01")
    field.press("End")
    field.press_sequentially("2")
    listbox = page.get_by_role("listbox", name="Domains")
    expect(listbox.get_by_role("option")).to_have_count(10)  # zz0120 … zz0129
    field.press("Escape")
    expect(listbox).to_be_hidden()
    field.press("Escape")  # a second Escape: the domain in force, nothing reloaded
    expect(field).to_have_value("shop-north.example")
    expect(rows(page)).to_have_count(4)

    field.fill("nothing-like-this")
    page.get_by_label("Search by email address or domain").click()  # leaving without a pick
    expect(field).to_have_value("shop-north.example")

    field.fill("")
    expect(rows(page)).to_have_count(8)
    expect(page).to_have_url(re.compile(r"/admin/accounts/$"))


def test_a_unicode_domain_typed_in_unicode_filters_the_aliases(logged_in_page: Page, app: Flask, crowded: None) -> None:
    with app.app_context():
        db = get_session()
        ids = dict(db.query(MailDomain.domain, MailDomain.id))
        db.add(MailAlias(domain_id=ids["xn--bcher-kva.de"], alias_email="info@xn--bcher-kva.de", destination_email="anna@xn--bcher-kva.de"))
        db.add(MailAlias(domain_id=ids["shop-north.example"], alias_email="sales@shop-north.example", destination_email="north0@shop-north.example"))
        db.commit()
    page = logged_in_page
    page.goto(ALIASES)
    expect(page.locator("#opmail-aliases tr[data-alias]")).to_have_count(2)
    field = picker(page)
    field.click()
    field.press_sequentially("bü")
    option = page.get_by_role("listbox", name="Domains").get_by_role("option", name="bücher.de")
    expect(option).to_be_visible()
    option.click()
    expect(page.locator("#opmail-aliases tr[data-alias]")).to_have_count(1)
    expect(page.locator('#opmail-aliases tr[data-alias="info@xn--bcher-kva.de"]')).to_be_visible()
    expect(field).to_have_value("bücher.de")
    expect(page).to_have_url(re.compile(r"\?domain=b%C3%BCcher\.de$"))
