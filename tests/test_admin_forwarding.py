"""The account page's Forwarding: where the account's mail goes (what Postfix does with it is in
test_mail_flow.py)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from opmail.models import MailForward
from opmail.rules import aliases
from tests.conftest import ADMIN_PASSWORD
from tests.helpers import add_account, add_domain, rows, snapshot


@pytest.fixture
def people(app):
    add_domain(app, "example.com")
    return {name: add_account(app, f"{name}@example.com") for name in ("jane", "bob")}


def forwards(app) -> list[str]:
    return sorted(email for (email,) in rows(app, sa.select(MailForward.destination_email)))


def forward(admin, account_id: int, destinations: str, keep_copy: bool = False):
    data = {"destinations": destinations} | ({"keep_copy": "y"} if keep_copy else {})
    return admin.post(f"/admin/accounts/forwarding/?id={account_id}", data)


def test_the_account_page_says_forwarding_is_off(admin, people):
    page = admin.get(f"/admin/accounts/edit/?id={people['jane']}").text
    assert "Off: mail stays in this mailbox." in page
    assert 'name="destinations"' in page and 'name="keep_copy"' in page


def test_forwarding_with_a_copy_is_saved_and_shown(app, admin, people):
    response = forward(admin, people["jane"], "bob@example.com, Jane.Doe@Elsewhere.example\n", keep_copy=True)
    assert response.status_code == 302
    assert forwards(app) == ["bob@example.com", "jane.doe@elsewhere.example", "jane@example.com"]
    page = admin.get(response.location).text
    assert "Forwarding of jane@example.com: bob@example.com, jane.doe@elsewhere.example (copy kept)." in page
    assert "On: new mail goes to bob@example.com, jane.doe@elsewhere.example and stays in this mailbox too." in page


def test_forwarding_without_a_copy_and_then_off(app, admin, people):
    forward(admin, people["jane"], "bob@example.com")
    assert forwards(app) == ["bob@example.com"]
    assert "not to this mailbox" in admin.get(f"/admin/accounts/edit/?id={people['jane']}").text
    forward(admin, people["jane"], "", keep_copy=True)  # no destination: a copy means nothing
    assert forwards(app) == []


@pytest.mark.parametrize(
    "destinations, message",
    [
        ("jane@example.com", "cannot forward to itself: tick Keep a copy"),
        ("ghost@example.com", "No account, alias or group ghost@example.com exists here"),
        ("not an address", "not an address: "),
        ("bob@example.com\nx@@y", "x@@y: "),
    ],
)
def test_bad_forwarding_is_refused_and_nothing_written(app, admin, people, destinations, message):
    before = snapshot(app)
    response = forward(admin, people["jane"], destinations)
    assert response.status_code == 422
    assert message in response.text.replace("&#39;", "'")
    assert snapshot(app) == before


def test_forwarding_may_go_to_an_alias(app, admin, people):
    with app.app_context():
        aliases.create_alias("sales@example.com", "bob@example.com")
    assert forward(admin, people["jane"], "sales@example.com").status_code == 302


def test_deleting_the_destination_account_ends_a_forward_to_it(app, admin, people):
    forward(admin, people["jane"], "bob@example.com", keep_copy=True)
    response = admin.post(f"/admin/accounts/delete/?id={people['bob']}", {"admin_password": ADMIN_PASSWORD})
    assert response.status_code == 303
    # Only the kept copy was left: jane's mail simply stays with her.
    assert forwards(app) == []


def test_deleting_the_forwarding_account_removes_its_forwards(app, admin, people):
    forward(admin, people["jane"], "bob@example.com")
    admin.post(f"/admin/accounts/delete/?id={people['jane']}", {"admin_password": ADMIN_PASSWORD})
    assert forwards(app) == []
