"""Admin → Groups: create, rename, delete; members from the group, the account page and in bulk."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from opmail.models import MailGroup, MailGroupMember
from tests.helpers import add_account, add_domain, rows, snapshot


def groups(app) -> list[tuple]:
    return rows(app, sa.select(MailGroup.name, MailGroup.description).order_by(MailGroup.name))


def members(app) -> list[tuple]:
    return rows(app, sa.select(MailGroup.name, MailGroupMember.account_id).join(MailGroup).order_by(MailGroup.name, MailGroupMember.account_id))


def group_id(app, name: str) -> int:
    return rows(app, sa.select(MailGroup.id).where(MailGroup.name == name))[0][0]


@pytest.fixture
def people(app, admin):
    add_domain(app)
    ids = [add_account(app, f"{name}@example.com") for name in ("ann", "ben", "cat")]
    admin.post("/admin/groups/new/", {"name": "staff", "description": "Everyone"})
    admin.post("/admin/groups/new/", {"name": "sales"})
    return ids


def test_create_list_and_rename(app, admin, people):
    assert groups(app) == [("sales", None), ("staff", "Everyone")]
    page = admin.get("/admin/groups/").text
    assert 'data-group="sales"' in page and 'data-group="staff"' in page
    staff = group_id(app, "staff")
    assert admin.post(f"/admin/groups/edit/?id={staff}", {"name": "team", "description": ""}).status_code == 302
    assert groups(app) == [("sales", None), ("team", None)]


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "This field is required."), ("  ", "Enter a group name."), ("sales", "A group called sales already exists."), ("x" * 256, "at most 255 characters")],
)
def test_bad_group_names_are_refused(app, admin, people, name, message):
    before = snapshot(app)
    response = admin.post("/admin/groups/new/", {"name": name})
    assert response.status_code == 422 and message in response.text
    staff = group_id(app, "staff")
    renamed = admin.post(f"/admin/groups/edit/?id={staff}", {"name": name})
    assert renamed.status_code == 422 and message in renamed.text
    assert snapshot(app) == before


def test_members_from_the_account_page(app, admin, people):
    ann = people[0]
    staff = group_id(app, "staff")
    page = admin.get(f"/admin/accounts/edit/?id={ann}").text
    assert "In no group." in page and "data-add-to-group" in page
    added = admin.post("/admin/groups/members/add/", {"id": staff, "account_id": ann, "back": "account"})
    assert added.status_code == 302 and added.headers["Location"].endswith(f"/admin/accounts/edit/?id={ann}")
    assert members(app) == [("staff", ann)]
    # Adding twice is harmless.
    admin.post("/admin/groups/members/add/", {"id": staff, "account_id": ann, "back": "account"})
    assert members(app) == [("staff", ann)]
    assert 'data-group="staff"' in admin.get(f"/admin/accounts/edit/?id={ann}").text
    removed = admin.post(f"/admin/groups/members/remove/?id={staff}", {"account_id": ann, "back": "account"})
    assert removed.headers["Location"].endswith(f"/admin/accounts/edit/?id={ann}")
    assert members(app) == []


def test_bulk_add_to_group(app, admin, people):
    sales = group_id(app, "sales")
    response = admin.post("/admin/accounts/action/", {"action": "group", "group_id": sales, "rowid": people[:2], "url": "/admin/accounts/"}, htmx=True)
    assert "2 accounts added to the group." in response.headers["HX-Trigger"]
    assert '<option value="group">Add to group</option>' in response.text
    assert members(app) == [("sales", people[0]), ("sales", people[1])]
    group_page = admin.get(f"/admin/groups/edit/?id={sales}").text
    assert 'data-member="ann@example.com"' in group_page and 'data-member="cat@example.com"' not in group_page


@pytest.mark.parametrize("group", ["", "999999", "x"])
def test_bulk_add_without_a_real_group_changes_nothing(app, admin, people, group):
    before = snapshot(app)
    response = admin.post("/admin/accounts/action/", {"action": "group", "group_id": group, "rowid": people, "url": "/admin/accounts/"}, htmx=True)
    assert "Choose a group first." in response.headers["HX-Trigger"]
    assert snapshot(app) == before


def test_delete_group_keeps_the_accounts(app, admin, people):
    staff = group_id(app, "staff")
    admin.post("/admin/groups/members/add/", {"id": staff, "account_id": people[0]})
    before = snapshot(app)
    assert admin.client.post(f"/admin/groups/delete/?id={staff}").status_code == 400
    assert snapshot(app) == before
    assert admin.post(f"/admin/groups/delete/?id={staff}", {}).status_code == 302
    assert groups(app) == [("sales", None)] and members(app) == []
    assert admin.get(f"/admin/accounts/edit/?id={people[0]}").status_code == 200


def test_group_name_is_shown_escaped(app, admin, people):
    admin.post("/admin/groups/new/", {"name": "<b onmouseover=x>bold</b>"})
    page = admin.get("/admin/groups/").text
    assert "<b onmouseover" not in page and "&lt;b onmouseover=x&gt;bold&lt;/b&gt;" in page


def test_a_group_gets_an_address_and_the_pages_say_what_it_is_for(app, admin, people):
    staff = group_id(app, "staff")
    response = admin.post(f"/admin/groups/edit/?id={staff}", {"name": "staff", "email": " Staff@Example.com "})
    assert response.status_code == 302, response.text
    assert rows(app, sa.select(MailGroup.email).where(MailGroup.id == staff)) == [("staff@example.com",)]
    listing = admin.get("/admin/groups/").text
    assert "staff@example.com" in listing
    for page in (listing, admin.get(f"/admin/groups/edit/?id={staff}").text):
        assert "A group is a distribution list: mail sent to its address reaches the mailbox of every member." in page


def test_a_group_address_can_be_removed(app, admin, people):
    staff = group_id(app, "staff")
    admin.post(f"/admin/groups/edit/?id={staff}", {"name": "staff", "email": "staff@example.com"})
    admin.post(f"/admin/groups/edit/?id={staff}", {"name": "staff", "email": ""})
    assert rows(app, sa.select(MailGroup.email).where(MailGroup.id == staff)) == [(None,)]


@pytest.mark.parametrize("address, message", [
    ("not-an-address", "exactly one @"),
    ("team@nowhere.example", "does not exist yet"),
])
def test_a_bad_group_address_is_refused(app, admin, people, address, message):
    before = snapshot(app)
    response = admin.post("/admin/groups/new/", {"name": "team", "email": address})
    assert response.status_code == 422
    assert message in response.text
    assert snapshot(app) == before
