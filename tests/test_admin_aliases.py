"""Admin → Aliases, driven like a browser would (test client with login and CSRF)."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from opmail.db import get_session
from opmail.models import MailAlias, MailDomain
from opmail.rules import sync
from tests.conftest import ADMIN_PASSWORD
from tests.helpers import add_account, add_domain, rows, snapshot

LIST = "/admin/aliases/"
NEW = "/admin/aliases/new/"


def aliases_on(html: str) -> list[str]:
    return re.findall(r'<tr data-alias="([^"]+)"', html)


def alias_rows(app) -> list[tuple]:
    return rows(
        app,
        sa.select(MailAlias.alias_email, MailAlias.destination_email, MailAlias.is_active).order_by(
            MailAlias.alias_email, MailAlias.destination_email
        ),
    )


@pytest.fixture
def mailboxes(app):
    add_domain(app, "example.com")
    add_domain(app, "other.org")
    add_account(app, "jane@example.com")
    add_account(app, "bob@example.com")
    add_account(app, "carol@other.org")


def test_create_alias_with_a_local_and_an_external_destination(app, admin, mailboxes):
    response = admin.post(NEW, {"alias_email": " Sales@Example.com ", "destinations": "jane@example.com\nPartner@Elsewhere.net"})
    assert response.status_code == 302
    assert "Alias sales@example.com added." in admin.get(LIST).text
    assert alias_rows(app) == [
        ("sales@example.com", "jane@example.com", True),
        ("sales@example.com", "partner@elsewhere.net", True),
    ]


def test_catch_all_and_comma_separated_destinations(app, admin, mailboxes):
    admin.post(NEW, {"alias_email": "@other.org", "destinations": "carol@other.org, bob@example.com, carol@other.org"})
    assert alias_rows(app) == [
        ("@other.org", "bob@example.com", True),
        ("@other.org", "carol@other.org", True),
    ]
    page = admin.get(LIST).text
    assert "catch-all" in page and aliases_on(page) == ["@other.org"]


@pytest.mark.parametrize(
    ("alias", "destinations", "field", "message"),
    [
        ("sales@nowhere.com", "jane@example.com", "alias_email", "The domain nowhere.com does not exist yet"),
        ("sales", "jane@example.com", "alias_email", "exactly one @"),
        ("@", "jane@example.com", "alias_email", "Enter a domain name."),
        ("sales+x@example.com", "jane@example.com", "alias_email", "may only contain a-z 0-9 . _ -"),
        ("jane@example.com", "bob@example.com", "alias_email", "jane@example.com is already an account"),
        ("team@example.com", "bob@example.com", "alias_email", "The alias team@example.com already exists"),
        ("sales@example.com", "", "destinations", "This field is required."),
        ("sales@example.com", " , \n", "destinations", "Enter at least one destination address."),
        ("sales@example.com", "ghost@example.com", "destinations", "No account, alias or group ghost@example.com exists here"),
        ("sales@example.com", "jane@example.com\nnot an address", "destinations", "not an address: The email address must not contain spaces."),
        ("sales@example.com", "sales@example.com", "destinations", "An alias cannot forward to itself."),
    ],
)
def test_bad_alias_input_is_refused_with_a_message_and_nothing_written(
    app, admin, mailboxes, alias, destinations, field, message
):
    admin.post(NEW, {"alias_email": "team@example.com", "destinations": "bob@example.com"})
    before = snapshot(app)
    response = admin.post(NEW, {"alias_email": alias, "destinations": destinations})
    assert response.status_code == 422
    errors = response.text[response.text.index(f'id="{field}-errors"'):]
    assert message in errors[: errors.index("</div></div>") + 1]
    assert snapshot(app) == before


def test_a_deleted_by_panel_account_is_not_a_destination(app, admin, mailboxes):
    with app.app_context():  # the Panel's soft delete, through its own rule
        sync.sync_delete("bob@example.com", None)
    response = admin.post(NEW, {"alias_email": "sales@example.com", "destinations": "bob@example.com"})
    assert response.status_code == 422 and "No account, alias or group bob@example.com exists here" in response.text


def test_an_alias_may_forward_to_another_alias(app, admin, mailboxes):
    admin.post(NEW, {"alias_email": "team@example.com", "destinations": "bob@example.com"})
    assert admin.post(NEW, {"alias_email": "all@example.com", "destinations": "team@example.com"}).status_code == 302


def test_html_in_input_is_shown_escaped(app, admin, mailboxes):
    response = admin.post(NEW, {"alias_email": '"><img src=x onerror=alert(1)>@example.com', "destinations": "<b>x</b>"})
    assert response.status_code == 422
    assert "<img src=x" not in response.text and "&lt;img src=x onerror=alert(1)&gt;" in response.text
    assert "<b>x</b>" not in response.text


def test_edit_destinations_replaces_them_and_keeps_the_status(app, admin, mailboxes):
    admin.post(NEW, {"alias_email": "team@example.com", "destinations": "jane@example.com\nbob@example.com"})
    admin.post("/admin/aliases/disable/?alias=team@example.com", {})
    form = admin.get("/admin/aliases/edit/?alias=team@example.com")
    assert form.status_code == 200 and "jane@example.com\nbob@example.com" not in form.text
    assert "bob@example.com\njane@example.com" in form.text
    response = admin.post("/admin/aliases/edit/?alias=team@example.com", {"destinations": "bob@example.com\ncarol@other.org"})
    assert response.status_code == 302
    assert alias_rows(app) == [
        ("team@example.com", "bob@example.com", False),
        ("team@example.com", "carol@other.org", False),
    ]


def test_edit_with_a_missing_local_destination_changes_nothing(app, admin, mailboxes):
    admin.post(NEW, {"alias_email": "team@example.com", "destinations": "jane@example.com"})
    before = snapshot(app)
    response = admin.post("/admin/aliases/edit/?alias=team@example.com", {"destinations": "jane@example.com\nghost@other.org"})
    assert response.status_code == 422 and "No account, alias or group ghost@other.org exists here" in response.text
    assert snapshot(app) == before


@pytest.mark.parametrize("url", ["/admin/aliases/edit/?alias=nope@example.com", "/admin/aliases/edit/"])
def test_unknown_alias_is_404(admin, mailboxes, url):
    assert admin.get(url).status_code == 404


def test_disable_enable_and_delete_in_place_for_htmx(app, admin, mailboxes):
    admin.post(NEW, {"alias_email": "team@example.com", "destinations": "jane@example.com\nbob@example.com"})
    admin.post(NEW, {"alias_email": "info@other.org", "destinations": "carol@other.org"})
    disabled = admin.post("/admin/aliases/disable/?alias=team@example.com&q=team", {}, htmx=True)
    assert disabled.status_code == 200 and "<html" not in disabled.text
    assert "Alias team@example.com disabled" in disabled.headers["HX-Trigger"]
    assert aliases_on(disabled.text) == ["team@example.com"]  # the list keeps its search
    assert {row[2] for row in alias_rows(app) if row[0] == "team@example.com"} == {False}
    admin.post("/admin/aliases/enable/?alias=team@example.com", {}, htmx=True)
    assert {row[2] for row in alias_rows(app)} == {True}
    deleted = admin.post("/admin/aliases/delete/?alias=team@example.com", {}, htmx=True)
    assert "Alias team@example.com deleted." in deleted.headers["HX-Trigger"]
    assert alias_rows(app) == [("info@other.org", "carol@other.org", True)]


@pytest.mark.parametrize("action", ["disable", "enable", "delete"])
def test_state_changes_need_the_csrf_token_and_a_post(app, admin, mailboxes, action):
    admin.post(NEW, {"alias_email": "team@example.com", "destinations": "jane@example.com"})
    before = snapshot(app)
    url = f"/admin/aliases/{action}/?alias=team@example.com"
    assert admin.client.post(url, data={}).status_code == 400
    assert admin.get(url).status_code == 405
    assert snapshot(app) == before


def test_list_groups_destinations_searches_filters_and_pages(app, admin, mailboxes):
    admin.post(NEW, {"alias_email": "team@example.com", "destinations": "jane@example.com\nbob@example.com"})
    admin.post(NEW, {"alias_email": "info@other.org", "destinations": "carol@other.org"})
    admin.post(NEW, {"alias_email": "fwd@other.org", "destinations": "someone@elsewhere.net"})
    page = admin.get(LIST).text
    assert aliases_on(page) == ["fwd@other.org", "info@other.org", "team@example.com"]
    team = page[page.index('data-alias="team@example.com"'):]
    assert re.findall(r"<div data-destination>([^<]+)</div>", team.split("</tr>")[0]) == [
        "bob@example.com", "jane@example.com"
    ]
    assert "3 aliases" in page
    # A search matches the alias, a destination or the domain; the domain filter narrows.
    assert aliases_on(admin.get(LIST + "?q=bob").text) == ["team@example.com"]
    assert aliases_on(admin.get(LIST + "?q=other").text) == ["fwd@other.org", "info@other.org"]
    assert aliases_on(admin.get(LIST + "?q=*elsewhere").text) == ["fwd@other.org"]
    fragment = admin.get(f"{LIST}?domain=OTHER.org&q=", htmx=True)
    assert "<html" not in fragment.text and fragment.headers["HX-Push-Url"] == f"{LIST}?domain=other.org"
    assert aliases_on(fragment.text) == ["fwd@other.org", "info@other.org"]


def test_list_pages_by_fifty(app, admin, mailboxes):
    with app.app_context():
        db = get_session()
        domain_id = db.scalar(sa.select(MailDomain.id).where(MailDomain.domain == "example.com"))
        db.add_all(
            MailAlias(domain_id=domain_id, alias_email=f"a{n:02}@example.com", destination_email=dest)
            for n in range(51)
            for dest in ("jane@example.com", "bob@example.com")
        )
        db.commit()
    first = admin.get(LIST).text
    assert len(aliases_on(first)) == 50 and "51 aliases · page 1 of 2" in first
    assert aliases_on(admin.get(LIST + "?page=2").text) == ["a50@example.com"]


def test_logged_out_is_sent_to_login(client, app):
    assert client.get(LIST).status_code == 302
    assert client.get(LIST, headers={"HX-Request": "true"}).headers["HX-Redirect"].startswith("/admin/login")


def test_deleting_an_account_updates_the_aliases_list(app, admin, mailboxes):
    """The cascade of tests/test_admin_accounts.py, seen where the admin looks: the aliases list."""
    admin.post(NEW, {"alias_email": "j@example.com", "destinations": "jane@example.com"})
    admin.post(NEW, {"alias_email": "team@example.com", "destinations": "jane@example.com\nbob@example.com"})
    jane = admin.get("/admin/accounts/?q=jane").text
    jane_id = re.search(r'name="rowid" value="(\d+)"', jane).group(1)
    admin.post(f"/admin/accounts/delete/?id={jane_id}", {"admin_password": ADMIN_PASSWORD})
    page = admin.get(LIST).text
    assert aliases_on(page) == ["team@example.com"]
    assert re.findall(r"<div data-destination>([^<]+)</div>", page) == ["bob@example.com"]
