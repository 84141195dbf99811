"""Optimistic concurrency on the account page: a form opened before someone else changed the account
(the Panel's password sync, a bulk action, another admin) is refused instead of overwriting."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from opmail.db import get_engine
from opmail.models import MailAccount
from opmail.passwords import verify_password
from opmail.rules import accounts, core
from tests.helpers import (
    SYNC_SECRET,
    add_account,
    add_domain,
    opened_version,
    rows,
    snapshot,
    sync_call,
)

PANEL_PASSWORD = "set by the panel"
STALE = "This account was changed by someone else ({}) since you opened this page. Reload to see the current values."


@pytest.fixture
def app_overrides():
    return {"MAIL_SYNC_SECRET": SYNC_SECRET}


@pytest.fixture
def jane(app):
    """conftest's jane with a display name and password of her own: the forms here change both."""
    add_domain(app)
    return add_account(app, "jane@example.com", password="admin's password", display_name="Jane")


def panel_sets_password(client) -> None:
    response = sync_call(client, {"action": "password", "email": "jane@example.com", "password": PANEL_PASSWORD})
    assert response.json == {"status": "ok"}


def details(version: str, **changes) -> dict:
    return {"display_name": "Jane Doe", "quota_mb": "500", "status": "active", "version": version, **changes}


def stored(app, account_id: int):
    [row] = rows(app, sa.select(MailAccount.__table__).where(MailAccount.id == account_id))
    return row


def test_details_form_opened_before_a_panel_password_change_is_refused(app, admin, client, jane):
    version = opened_version(admin, jane)
    panel_sets_password(client)
    before = snapshot(app)
    refused = admin.post(f"/admin/accounts/edit/?id={jane}", details(version))
    assert refused.status_code == 422
    assert STALE.format("password") in refused.text
    assert snapshot(app) == before
    # After a reload the same change saves, and the Panel's password stays.
    saved = admin.post(f"/admin/accounts/edit/?id={jane}", details(opened_version(admin, jane)))
    assert saved.status_code == 302
    account = stored(app, jane)
    assert (account.display_name, account.quota_mb) == ("Jane Doe", 500)
    assert verify_password(PANEL_PASSWORD, account.password)


def test_details_form_opened_before_a_bulk_suspend_is_refused(app, admin, jane):
    version = opened_version(admin, jane)
    suspended = admin.post("/admin/accounts/action/", {"action": "suspend", "rowid": [jane], "url": "/admin/accounts/"})
    assert suspended.status_code == 302
    before = snapshot(app)
    refused = admin.post(f"/admin/accounts/edit/?id={jane}", details(version))  # would unsuspend
    assert refused.status_code == 422
    assert STALE.format("status") in refused.text
    assert snapshot(app) == before
    assert stored(app, jane).is_active is False


def test_refusal_names_every_field_that_moved(app, admin, jane):
    version = opened_version(admin, jane)
    with app.app_context():
        accounts.set_accounts_quota([jane], 7)
        accounts.set_accounts_active([jane], False)
    refused = admin.post(f"/admin/accounts/edit/?id={jane}", details(version))
    assert STALE.format("quota, status") in refused.text


def test_password_reset_opened_before_a_panel_password_change_is_refused(app, admin, client, jane):
    version = opened_version(admin, jane)
    panel_sets_password(client)
    before = snapshot(app)
    form = {"new_password": "admin's new one", "confirm_password": "admin's new one", "version": version}
    refused = admin.post(f"/admin/accounts/password/?id={jane}", form)
    assert refused.status_code == 422
    assert STALE.format("password") in refused.text
    assert snapshot(app) == before
    assert verify_password(PANEL_PASSWORD, stored(app, jane).password)


def test_fresh_forms_save_even_when_nothing_changes(app, admin, jane):
    """A save that writes the values already stored still counts as saved (MariaDB counts the rows
    an UPDATE matched, not only the ones whose values changed)."""
    unchanged = details(opened_version(admin, jane), display_name="Jane", quota_mb="0")
    assert admin.post(f"/admin/accounts/edit/?id={jane}", unchanged).status_code == 302
    assert admin.post(f"/admin/accounts/edit/?id={jane}", unchanged).status_code == 302  # same version
    form = {"new_password": "n3w password", "confirm_password": "n3w password", "version": opened_version(admin, jane)}
    assert admin.post(f"/admin/accounts/password/?id={jane}", form).status_code == 302
    assert verify_password("n3w password", stored(app, jane).password)


@pytest.mark.parametrize("version", ["", "garbage", "0.0.0.0.0"])
def test_a_form_without_a_valid_version_changes_nothing(app, admin, jane, version):
    before = snapshot(app)
    refused = admin.post(f"/admin/accounts/edit/?id={jane}", details(version))
    assert refused.status_code == 422 and "Reload to see the current values." in refused.text
    assert snapshot(app) == before


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_change_between_the_check_and_the_write_is_caught(app, jane):
    """SQLite ignores FOR UPDATE: the UPDATE's own WHERE must catch a write that lands in between.
    (On MariaDB the locked row makes that write wait for the commit instead.)"""
    with app.app_context():
        version = accounts.account_version(accounts.get_account(jane))
        engine = get_engine()

        panel_wrote = []

        def panel_writes_first(connection, cursor, statement, *args):
            if statement.startswith("UPDATE mail_accounts") and not panel_wrote:
                panel_wrote.append(True)
                with engine.begin() as other:  # another connection, like a webhook worker
                    other.execute(sa.update(MailAccount).values(password="{BLF-CRYPT}from-the-panel"))

        event.listen(engine, "before_cursor_execute", panel_writes_first)
        try:
            with pytest.raises(core.InvalidInput, match=r"changed by someone else \(just now\)"):
                accounts.update_account(
                    jane, display_name="Jane Doe", quota_mb=1, is_active=True, expected_version=version
                )
        finally:
            event.remove(engine, "before_cursor_execute", panel_writes_first)
        assert panel_wrote
    account = stored(app, jane)
    assert (account.display_name, account.quota_mb, account.password) == ("Jane", 0, "{BLF-CRYPT}from-the-panel")
