"""Domain admins and the mail pages: aliases, groups and autoresponders of the domains an admin
manages are shown and changed; those of other domains are not found, and none can be created there."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from opmail.auth import set_admin_password
from opmail.db import get_session
from opmail.models import (
    Admin,
    AdminDomain,
    MailAlias,
    MailAutoresponder,
    MailGroup,
    MailGroupMember,
)
from opmail.rules import aliases, autoresponders, groups
from tests.conftest import ADMIN_PASSWORD, AdminClient, log_in
from tests.helpers import add_account, add_domain, rows

NOT_YOURS = "not one of the domains you manage"
REPLY = autoresponders.AutoresponderInput("Away", "Back on Monday.", None, None, True)


@pytest.fixture
def mail(app):
    """a.example and b.example, each with an account, an alias, a group and an autoresponder, and
    a group without an address (a server admin's only)."""
    ids = {"a": add_domain(app, "a.example"), "b": add_domain(app, "b.example")}
    ids["ann"] = add_account(app, "ann@a.example")
    ids["bob"] = add_account(app, "bob@b.example")
    with app.app_context():
        aliases.create_alias("sales-a@a.example", "ann@a.example")
        aliases.create_alias("sales-b@b.example", "bob@b.example")
        ids["team_a"] = groups.save_group(None, "team-a", None, "team@a.example").id
        ids["team_b"] = groups.save_group(None, "team-b", None, "team@b.example").id
        ids["everyone"] = groups.save_group(None, "everyone", None).id
        ids["reply_a"] = autoresponders.create_autoresponder("ann@a.example", REPLY).id
        ids["reply_b"] = autoresponders.create_autoresponder("bob@b.example", REPLY).id
    return ids


@pytest.fixture
def domain_admin(app, client, mail) -> AdminClient:
    """Logged in as ``alice``, the domain admin of a.example."""
    with app.app_context():
        set_admin_password("alice", ADMIN_PASSWORD)
        db = get_session()
        alice = db.scalar(sa.select(Admin).where(Admin.username == "alice"))
        alice.role = "domain"
        db.add(AdminDomain(admin_id=alice.id, domain_id=mail["a"]))
        db.commit()
    admin_client = AdminClient(client)
    response = admin_client.login("alice", ADMIN_PASSWORD)
    assert response.status_code == 302, response.text
    return admin_client


def alias_rows(app) -> list[tuple]:
    return rows(app, sa.select(MailAlias.alias_email, MailAlias.is_active).order_by(MailAlias.alias_email))


def test_lists_show_only_the_managed_domains(domain_admin):
    page = domain_admin.get("/admin/aliases/").text
    assert "sales-a@a.example" in page
    assert "sales-b@b.example" not in page
    page = domain_admin.get("/admin/groups/").text
    assert "team-a" in page
    assert "team-b" not in page and "team@b.example" not in page
    assert "everyone" not in page
    page = domain_admin.get("/admin/autoresponders/").text
    assert "ann@a.example" in page
    assert "bob@b.example" not in page


def test_a_server_admin_still_sees_every_domain(app, client, admin_user, mail):
    admin = log_in(client)
    page = admin.get("/admin/aliases/").text
    assert "sales-a@a.example" in page and "sales-b@b.example" in page
    page = admin.get("/admin/groups/").text
    assert "team-a" in page and "team-b" in page and "everyone" in page
    page = admin.get("/admin/autoresponders/").text
    assert "ann@a.example" in page and "bob@b.example" in page
    assert admin.get("/admin/aliases/edit/?alias=sales-b@b.example").status_code == 200
    assert admin.get(f"/admin/groups/edit/?id={mail['team_b']}").status_code == 200
    assert admin.get(f"/admin/autoresponders/edit/?id={mail['reply_b']}").status_code == 200


def test_another_domains_pages_are_not_found(domain_admin, mail):
    assert domain_admin.get("/admin/aliases/edit/?alias=sales-b@b.example").status_code == 404
    assert domain_admin.get(f"/admin/groups/edit/?id={mail['team_b']}").status_code == 404
    assert domain_admin.get(f"/admin/groups/edit/?id={mail['everyone']}").status_code == 404
    assert domain_admin.get(f"/admin/autoresponders/edit/?id={mail['reply_b']}").status_code == 404
    # Its own open as ever.
    assert domain_admin.get("/admin/aliases/edit/?alias=sales-a@a.example").status_code == 200
    assert domain_admin.get(f"/admin/groups/edit/?id={mail['team_a']}").status_code == 200
    assert domain_admin.get(f"/admin/autoresponders/edit/?id={mail['reply_a']}").status_code == 200


def test_changing_another_domains_rows_changes_nothing(app, domain_admin, mail):
    before = alias_rows(app)
    for action in ("disable", "delete"):
        response = domain_admin.post(f"/admin/aliases/{action}/?alias=sales-b@b.example", {})
        assert response.status_code == 404
    domain_admin.post("/admin/aliases/edit/?alias=sales-b@b.example", {"destinations": "ann@a.example"})
    assert alias_rows(app) == before
    assert domain_admin.post(f"/admin/groups/delete/?id={mail['team_b']}", {}).status_code == 404
    assert domain_admin.post(f"/admin/autoresponders/delete/?id={mail['reply_b']}", {}).status_code == 404
    assert rows(app, sa.select(MailGroup.name).order_by(MailGroup.name)) == [("everyone",), ("team-a",), ("team-b",)]
    assert rows(app, sa.select(MailAutoresponder.email).order_by(MailAutoresponder.email)) == [
        ("ann@a.example",),
        ("bob@b.example",),
    ]


def test_own_rows_still_change(app, domain_admin):
    assert domain_admin.post("/admin/aliases/disable/?alias=sales-a@a.example", {}).status_code in (302, 303)
    assert ("sales-a@a.example", False) in alias_rows(app)


def test_nothing_is_created_on_another_domain(app, domain_admin):
    response = domain_admin.post("/admin/aliases/new/", {"alias_email": "info@b.example", "destinations": "ann@a.example"})
    assert response.status_code == 422
    assert NOT_YOURS in response.text
    # The same words for a domain that does not exist.
    response = domain_admin.post("/admin/aliases/new/", {"alias_email": "info@nowhere.example", "destinations": "ann@a.example"})
    assert response.status_code == 422
    assert NOT_YOURS in response.text
    response = domain_admin.post("/admin/groups/new/", {"name": "b-team", "email": "b-team@b.example"})
    assert response.status_code == 422
    assert NOT_YOURS in response.text
    response = domain_admin.post(
        "/admin/autoresponders/new/", {"email": "bob@b.example", "subject": "Hi", "body": "Gone.", "is_active": "y"}
    )
    assert response.status_code == 422
    assert NOT_YOURS in response.text
    assert [a for (a, _) in alias_rows(app)] == ["sales-a@a.example", "sales-b@b.example"]
    assert rows(app, sa.select(MailGroup.name).where(MailGroup.name == "b-team")) == []
    # On its own domain it works.
    response = domain_admin.post("/admin/aliases/new/", {"alias_email": "info@a.example", "destinations": "ann@a.example"})
    assert response.status_code in (302, 303)


def test_only_accounts_of_the_managed_domains_join_a_group(app, domain_admin, mail):
    domain_admin.post("/admin/groups/members/add/", {"id": mail["team_a"], "account_id": mail["bob"]})
    domain_admin.post("/admin/groups/members/add/", {"id": mail["team_a"], "account_id": mail["ann"]})
    members = rows(app, sa.select(MailGroupMember.account_id).where(MailGroupMember.group_id == mail["team_a"]))
    assert members == [(mail["ann"],)]
    page = domain_admin.get(f"/admin/groups/edit/?id={mail['team_a']}").text
    assert "ann@a.example" in page and "bob@b.example" not in page
