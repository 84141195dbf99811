"""One address is one thing: an account, an alias or a group's address, never two of them.

Checked on every path that creates an address (admin forms, the Panel's webhook, CSV import) and
where two writers create the same address at once: the mail_addresses primary key lets one win.
"""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from opmail.addresses import InvalidInput
from opmail.db import create_schema, get_engine
from opmail.models import MailAccount, MailAddress, MailAlias, MailGroup
from opmail.rules import aliases, core, groups, imports
from tests.helpers import SYNC_SECRET, add_account, add_domain, rows, snapshot, sync_call

ALIAS_PAGE = "/admin/aliases/new/"


@pytest.fixture
def app_overrides():
    return {"MAIL_SYNC_SECRET": SYNC_SECRET}


@pytest.fixture
def example(app):
    """example.com with jane's account, the sales alias (to jane) and the team group's address."""
    add_domain(app, "example.com")
    add_account(app, "jane@example.com")
    with app.app_context():
        aliases.create_alias("sales@example.com", "jane@example.com")
        groups.save_group(None, "Team", None, "team@example.com")
    return app


def claims(app) -> dict[str, str]:
    return dict(rows(app, sa.select(MailAddress.address, MailAddress.kind)))


def test_every_address_is_claimed_by_what_holds_it(example):
    assert claims(example) == {
        "jane@example.com": "account", "sales@example.com": "alias", "team@example.com": "group",
    }


@pytest.mark.parametrize("taken, holder", [
    ("jane@example.com", "an account"), ("sales@example.com", "an alias"), ("team@example.com", "a group's address"),
])
def test_admin_forms_refuse_an_address_that_is_already_something(example, admin, taken, holder):
    before = snapshot(example)
    attempts = [
        ("/admin/accounts/new/", {"email": taken, "password": "a good password", "quota_mb": "0"}),
        (ALIAS_PAGE, {"alias_email": taken, "destinations": "jane@example.com"}),
        ("/admin/groups/new/", {"name": "Another", "email": taken}),
    ]
    for url, data in attempts:
        response = admin.post(url, data)
        assert response.status_code == 422, (url, response.status_code)
        assert f"{taken} is already {holder}" in response.text.replace("&#39;", "'") or "already exists" in response.text
    assert snapshot(example) == before


def test_an_alias_at_an_accounts_address_names_the_account(example, admin):
    response = admin.post(ALIAS_PAGE, {"alias_email": "jane@example.com", "destinations": "sales@example.com"})
    assert "jane@example.com is already an account" in response.text


def test_a_group_takes_a_free_address_and_frees_it_when_it_changes(example, admin):
    with example.app_context():
        [group_id] = [g.id for g in [groups.save_group(None, "Sales team", None, "deals@example.com")]]
        groups.save_group(group_id, "Sales team", None, "offers@example.com")
        aliases.create_alias("deals@example.com", "jane@example.com")  # free again
        with pytest.raises(InvalidInput, match=r"offers@example\.com is already a group's address"):
            aliases.create_alias("offers@example.com", "jane@example.com")
        groups.delete_group(group_id)
        aliases.create_alias("offers@example.com", "jane@example.com")


def test_a_group_address_must_be_on_one_of_our_domains(example, admin):
    response = admin.post("/admin/groups/new/", {"name": "Outside", "email": "team@elsewhere.example"})
    assert response.status_code == 422
    assert "does not exist yet" in response.text


def test_deleting_frees_the_addresses(example, admin):
    [(jane_id,)] = rows(example, sa.select(MailAccount.id))
    with example.app_context():
        aliases.delete_aliases(["sales@example.com"])
    response = admin.post(
        f"/admin/accounts/delete/?id={jane_id}", {"admin_password": "correct horse battery"}, follow_redirects=True
    )
    assert response.status_code == 200
    assert claims(example) == {"team@example.com": "group"}
    with example.app_context():
        aliases.create_alias("jane@example.com", "team@example.com")
        groups.save_group(None, "Sales", None, "sales@example.com")


def test_deleting_a_domain_frees_its_addresses_and_groups_lose_theirs(example, admin):
    [(domain_id,)] = rows(example, sa.text("SELECT id FROM mail_domains"))
    response = admin.post(
        f"/admin/domains/delete/?id={domain_id}", {"admin_password": "correct horse battery"}, follow_redirects=True
    )
    assert response.status_code == 200, response.text
    assert claims(example) == {}
    assert rows(example, sa.select(MailGroup.name, MailGroup.email)) == [("Team", None)]


@pytest.mark.parametrize("taken, holder", [("sales@example.com", "an alias"), ("team@example.com", "a group's address")])
def test_webhook_create_of_an_alias_or_group_address_is_a_clear_422(example, client, taken, holder):
    before = snapshot(example)
    response = sync_call(client, {"action": "create", "email": taken, "password": "a good password"})
    assert response.status_code == 422
    assert response.json["errors"]["email"] == [
        f"{taken} is already {holder}: an address can be an account, an alias or a group, only one of them."
    ]
    assert snapshot(example) == before


def test_webhook_create_of_an_existing_account_still_updates_it(example, client):
    response = sync_call(client, {"action": "create", "email": "jane@example.com", "password": "a good password"})
    assert response.status_code == 200


def test_csv_import_lists_alias_and_group_addresses_as_problems(example):
    data = (
        b"email,password\n"
        b"sales@example.com,a good password\n"
        b"team@example.com,a good password\n"
        b"new@example.com,a good password\n"
    )
    with example.app_context():
        check = imports.check_import(data)
    assert [(problem.row, problem.message) for problem in check.problems] == [
        (2, "sales@example.com is already an alias: an address can be an account, an alias or a group, only one of them."),
        (3, "team@example.com is already a group's address: an address can be an account, an alias or a group, only one of them."),
    ]


def test_import_stops_when_an_alias_took_an_address_after_the_check(example):
    data = b"email,password\nlate@example.com,a good password\n"
    with example.app_context():
        check = imports.check_import(data)
        assert check.ok
        aliases.create_alias("late@example.com", "jane@example.com")
        with pytest.raises(InvalidInput, match="added meanwhile"):
            imports.import_accounts(check)
    assert rows(example, sa.select(MailAccount.email).where(MailAccount.email == "late@example.com")) == []


@pytest.mark.mariadb_only
def test_two_writers_claiming_one_address_at_once_leave_one_holder(example, monkeypatch):
    """An account and an alias created at the same moment (two nodes, or an admin and the Panel):
    both read "free", both insert; the primary key of mail_addresses makes the second insert wait
    for the first transaction, then fail. (SQLite lets one writer at a time: no such race.)"""
    both_read = threading.Barrier(2, timeout=30)
    read = core.address_holders
    waited = threading.local()

    def read_then_wait(db, addresses):
        """The claim's read, then wait for the other writer's (once: an alias reads again later)."""
        holders = read(db, addresses)
        if not getattr(waited, "once", False):
            waited.once = True
            both_read.wait()
        return holders

    monkeypatch.setattr(core, "address_holders", read_then_wait)
    outcomes: dict[str, object] = {}

    def attempt(name, create):
        with example.app_context():
            try:
                create()
                outcomes[name] = "created"
            except InvalidInput as error:
                outcomes[name] = error.message
            finally:
                get_engine().dispose()

    threads = [
        threading.Thread(target=attempt, args=("account", lambda: add_account(example, "both@example.com"))),
        threading.Thread(target=attempt, args=("alias", lambda: aliases.create_alias("both@example.com", "jane@example.com"))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes.values(), key=lambda outcome: outcome != "created")[0] == "created"
    loser = [outcome for outcome in outcomes.values() if outcome != "created"]
    assert len(loser) == 1 and ("just taken" in loser[0] or "already exists" in loser[0]), outcomes
    accounts = rows(example, sa.select(MailAccount.email).where(MailAccount.email == "both@example.com"))
    alias_rows = rows(example, sa.select(MailAlias.alias_email).where(MailAlias.alias_email == "both@example.com"))
    assert len(accounts) + len(alias_rows) == 1
    holder = claims(example)["both@example.com"]
    assert holder == ("account" if accounts else "alias")


def test_init_db_claims_an_older_databases_addresses_and_names_clashes(app, runner):
    add_domain(app, "example.com")
    add_account(app, "jane@example.com")
    with app.app_context():
        aliases.create_alias("sales@example.com", "jane@example.com")
        with get_engine().begin() as connection:
            connection.execute(MailAddress.__table__.delete())
            domain_id = connection.scalar(sa.text("SELECT id FROM mail_domains"))
            # An older opmail let an alias take an account's address.
            connection.execute(
                sa.insert(MailAlias), [{"domain_id": domain_id, "alias_email": "jane@example.com", "destination_email": "sales@example.com"}]
            )
            # Back to the release before the claims: its revision runs again on init-db.
            connection.exec_driver_sql("UPDATE opmail_alembic_version SET version_num = '56473bf69181'")
    result = runner.invoke(args=["opmail", "init-db"])
    assert result.exit_code == 0, result.output
    assert "jane@example.com is an account and an alias: mail goes to the account." in result.output
    assert claims(app) == {"jane@example.com": "account", "sales@example.com": "alias"}
    with app.app_context():
        assert create_schema() == []  # a second run changes nothing
