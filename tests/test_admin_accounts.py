"""Admin → Accounts, driven like a browser would (test client with login and CSRF)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from opmail import queries
from opmail.db import get_session
from opmail.models import (
    MailAccount,
    MailAlias,
    MailAutoresponder,
    MailGroup,
    MailGroupMember,
    MailQuotaUsage,
    UserTwoFactor,
    utcnow,
)
from opmail.passwords import verify_password
from opmail.rules import accounts
from tests.conftest import ADMIN_PASSWORD
from tests.helpers import add_account, add_domain, opened_version, rows, snapshot

LIST = "/admin/accounts/"


def emails_on(html: str) -> list[str]:
    """The addresses in the table, in display order."""
    return re.findall(r'<tr data-email="([^"]+)"', html)


def account(app, email):
    with app.app_context():
        return get_session().scalar(sa.select(MailAccount).where(MailAccount.email == email))


@pytest.fixture
def three(app):
    add_domain(app, "example.com")
    add_domain(app, "other.org")
    return [
        add_account(app, "alice@example.com", quota_mb=100),
        add_account(app, "bob@example.com", quota_mb=2048),
        add_account(app, "carol@other.org"),
    ]


# --- the list ---------------------------------------------------------------------------------------


def test_list_shows_the_six_columns_and_formats(app, admin, three):
    with app.app_context():
        db = get_session()
        db.add(MailQuotaUsage(email="alice@example.com", bytes=95 * 1024 * 1024, messages=3))
        db.add(UserTwoFactor(email="bob@example.com", secret="s", enabled_at=utcnow()))
        db.get(MailAccount, three[1]).last_synced_at = utcnow()
        db.commit()
    page = admin.get(LIST)
    assert page.status_code == 200
    for header in ("Email", "Domain", "Quota", "2FA", "Last Sync", "Status"):
        assert f">{header}" in page.text
    alice = page.text.split('data-email="alice@example.com"')[1].split("</tr>")[0]
    assert "100 MB" in alice and "95.0 MB used (95 %)" in alice and "bg-danger" in alice
    bob = page.text.split('data-email="bob@example.com"')[1].split("</tr>")[0]
    assert "2.0 GB" in bob and ">on<" in bob and "UTC" in bob
    carol = page.text.split('data-email="carol@other.org"')[1].split("</tr>")[0]
    assert "Unlimited" in carol and "—" in carol and ">off<" in carol and "Active" in carol
    assert "3 accounts" in page.text


@pytest.mark.parametrize(("used_mb", "colour"), [(69, "success"), (70, "warning"), (89, "warning"), (90, "danger")])
def test_usage_bar_colour_thresholds(app, admin, used_mb, colour):
    add_domain(app)
    add_account(app, "u@example.com", quota_mb=100)
    with app.app_context():
        get_session().add(MailQuotaUsage(email="u@example.com", bytes=used_mb * 1024 * 1024, messages=1))
        get_session().commit()
    assert f"bg-{colour}" in admin.get(LIST).text


def test_search_narrows_by_address_or_domain_as_a_fragment(admin, three):
    response = admin.get(LIST + "?q=al", htmx=True)
    assert response.status_code == 200
    assert "<html" not in response.text and 'id="opmail-bulk"' in response.text
    assert emails_on(response.text) == ["alice@example.com"]
    assert "HX-Request" in response.headers["Vary"]
    assert emails_on(admin.get(LIST + "?q=other", htmx=True).text) == ["carol@other.org"]
    assert emails_on(admin.get(LIST + "?q=ALICE@EX", htmx=True).text) == ["alice@example.com"]
    assert emails_on(admin.get(LIST + "?q=*ob@", htmx=True).text) == ["bob@example.com"]
    assert emails_on(admin.get(LIST + "?q=zzz", htmx=True).text) == []
    assert "No accounts match." in admin.get(LIST + "?q=zzz", htmx=True).text


def test_substring_search_stops_after_a_bounded_number_of_addresses_and_says_where(app, admin, monkeypatch):
    add_domain(app, "example.com")
    for name in ("anna", "bob", "dan", "ned", "nina"):
        add_account(app, f"{name}@example.com")
    # Every address but bob's contains "n"; the search checks the first three addresses only.
    monkeypatch.setattr(queries, "SUBSTRING_SCAN", 3)
    response = admin.get(LIST + "?q=*n", htmx=True)
    assert emails_on(response.text) == ["anna@example.com", "dan@example.com"]
    assert "so it stopped at dan@example.com" in response.text
    # A prefix search uses the index: no bound, no notice.
    response = admin.get(LIST + "?q=ni", htmx=True)
    assert emails_on(response.text) == ["nina@example.com"] and "it stopped at" not in response.text
    # As many addresses as the bound: all are checked, and nothing is said.
    monkeypatch.setattr(queries, "SUBSTRING_SCAN", 5)
    response = admin.get(LIST + "?q=*n", htmx=True)
    assert len(emails_on(response.text)) == 4 and "it stopped at" not in response.text


def test_search_pushes_the_short_url_and_keeps_the_sort(admin, three):
    response = admin.get(LIST + "?q=a&domain=&status=&sort=domain&dir=desc", htmx=True)
    assert response.headers["HX-Push-Url"] == LIST + "?q=a&sort=domain&dir=desc"
    # The fragment carries the sort, which the search box includes in its next request.
    assert 'id="opmail-sort-state"' in response.text and 'name="sort" value="domain"' in response.text


def test_search_treats_like_wildcards_literally(app, admin):
    add_domain(app)
    add_account(app, "a_b@example.com")
    add_account(app, "axb@example.com")
    assert emails_on(admin.get(LIST + "?q=a_", htmx=True).text) == ["a_b@example.com"]
    assert emails_on(admin.get(LIST + "?q=%25", htmx=True).text) == []


def test_full_page_keeps_the_query_in_the_form(admin, three):
    page = admin.get(LIST + "?q=al")
    assert "<html" in page.text and 'value="al"' in page.text
    assert emails_on(page.text) == ["alice@example.com"]


def test_history_restore_gets_the_full_page(admin, three):
    page = admin.get(LIST + "?q=al", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<html" in page.text


def test_domain_and_status_filters_combine_with_search(app, admin, three):
    with app.app_context():
        accounts.set_accounts_active([three[0]], False)
    # The domain filter names the domain (any case); a name that is no domain matches nothing.
    assert emails_on(admin.get(f"{LIST}?domain=other.org").text) == ["carol@other.org"]
    assert emails_on(admin.get(f"{LIST}?domain=Other.ORG").text) == ["carol@other.org"]
    assert emails_on(admin.get(f"{LIST}?domain=abc").text) == []
    assert emails_on(admin.get(f"{LIST}?status=suspended").text) == ["alice@example.com"]
    assert emails_on(admin.get(f"{LIST}?status=active&q=b").text) == ["bob@example.com"]
    assert emails_on(admin.get(f"{LIST}?status=nonsense&page=-3&sort=x").text) == [
        "alice@example.com", "bob@example.com", "carol@other.org"
    ]


def test_panel_deleted_accounts_are_hidden_unless_asked_for(app, admin, three):
    with app.app_context():
        get_session().get(MailAccount, three[2]).deleted_at = utcnow()
        get_session().commit()
    assert "carol@other.org" not in emails_on(admin.get(LIST).text)
    deleted = admin.get(LIST + "?status=deleted")
    assert emails_on(deleted.text) == ["carol@other.org"]
    assert "Deleted by Panel" in deleted.text and '<option value="restore">Restore</option>' in deleted.text
    restored = admin.post(LIST.replace("/accounts/", "/accounts/action/"), {"action": "restore", "rowid": [three[2]], "url": LIST + "?status=deleted"}, htmx=True)
    assert "1 account restored." in restored.headers["HX-Trigger"]
    assert account(app, "carol@other.org").deleted_at is None


def test_sorting_on_every_column_including_usage(app, admin, three):
    with app.app_context():
        db = get_session()
        db.add(MailQuotaUsage(email="alice@example.com", bytes=90 * 1024 * 1024, messages=1))  # 90 %
        db.add(MailQuotaUsage(email="bob@example.com", bytes=200 * 1024 * 1024, messages=1))  # ~10 %
        db.add(MailQuotaUsage(email="carol@other.org", bytes=1024, messages=1))  # unlimited
        db.commit()

    def order(sort, d=""):
        return emails_on(admin.get(f"{LIST}?sort={sort}&dir={d}").text)

    assert order("email", "desc") == ["carol@other.org", "bob@example.com", "alice@example.com"]
    assert order("domain", "desc")[0] == "carol@other.org"
    assert order("quota") == ["carol@other.org", "alice@example.com", "bob@example.com"]
    assert order("usage", "desc") == ["bob@example.com", "alice@example.com", "carol@other.org"]
    assert order("percent", "desc")[:2] == ["alice@example.com", "bob@example.com"]
    for sort in ("2fa", "last_sync", "status"):
        assert sorted(order(sort)) == ["alice@example.com", "bob@example.com", "carol@other.org"]


def test_pagination_50_a_page_with_the_count(app, admin):
    domain_id = add_domain(app)
    with app.app_context():
        db = get_session()
        db.add_all(MailAccount(email=f"u{i:03d}@example.com", domain_id=domain_id, password="x") for i in range(120))
        db.commit()
    first = admin.get(LIST)
    assert len(emails_on(first.text)) == 50 and "120 accounts" in first.text and "page 1 of 3" in first.text
    third = admin.get(LIST + "?page=3", htmx=True)
    assert emails_on(third.text)[0] == "u100@example.com" and len(emails_on(third.text)) == 20
    assert len(emails_on(admin.get(LIST + "?page=99").text)) == 20  # past the end: the last page


def test_display_name_html_is_escaped_in_page_and_fragment(app, admin):
    add_domain(app)
    x = add_account(app, "x@example.com", display_name='"><img src=x onerror=alert(1)> <b hx-get="/">')
    for response in (admin.get(LIST), admin.get(LIST, htmx=True), admin.get(f"/admin/accounts/edit/?id={x}")):
        assert "<img src=x" not in response.text and '<b hx-get="/">' not in response.text
        assert "&lt;img src=x onerror=alert(1)&gt;" in response.text


# --- Add Account ------------------------------------------------------------------------------------


def test_add_account_stores_a_dovecot_hash_and_opens_its_page(app, admin):
    add_domain(app)
    response = admin.post("/admin/accounts/new/", {"email": "  Jane@Example.com ", "password": "mail pass 1", "quota_mb": "1024"})
    assert response.status_code == 302 and "/admin/accounts/edit/?id=" in response.location
    jane = account(app, "jane@example.com")
    assert jane.quota_mb == 1024 and jane.is_active and jane.last_synced_at is None
    assert jane.password.startswith("{BLF-CRYPT}$2y$") and verify_password("mail pass 1", jane.password)
    page = admin.get(response.location)
    assert "Account jane@example.com created." in page.text


@pytest.mark.parametrize("app_overrides", [{"DOVECOT_PASSWORD_SCHEME": "SHA512-CRYPT"}])
def test_add_account_uses_the_configured_scheme(app, admin):
    add_domain(app)
    admin.post("/admin/accounts/new/", {"email": "jane@example.com", "password": "password 10", "quota_mb": "0"})
    assert account(app, "jane@example.com").password.startswith("{SHA512-CRYPT}$6$rounds=5000$")


def test_add_account_on_a_missing_domain_says_which_and_links_to_domains(app, admin):
    before = snapshot(app)
    response = admin.post("/admin/accounts/new/", {"email": "jane@nowhere.org", "password": "password 10", "quota_mb": "0"})
    assert response.status_code == 422
    assert "The domain nowhere.org does not exist yet" in response.text
    assert 'href="/admin/domains/new/?domain=nowhere.org"' in response.text
    assert snapshot(app) == before


def test_duplicate_address_in_any_case_is_a_form_error(app, admin):
    add_domain(app)
    add_account(app, "bob@example.com")
    before = snapshot(app)
    response = admin.post("/admin/accounts/new/", {"email": "Bob@EXAMPLE.com", "password": "password 10", "quota_mb": "0"})
    assert response.status_code == 422 and "The account bob@example.com already exists." in response.text
    assert snapshot(app) == before


def test_re_adding_a_panel_deleted_address_restores_it(app, admin):
    add_domain(app)
    jane_id = add_account(app, "jane@example.com", quota_mb=5)
    with app.app_context():
        get_session().get(MailAccount, jane_id).deleted_at = utcnow()
        get_session().commit()
    response = admin.post("/admin/accounts/new/", {"email": "jane@example.com", "password": "new password", "quota_mb": "7"}, follow_redirects=True)
    assert "had been deleted by the Panel: it is restored" in response.text
    jane = account(app, "jane@example.com")
    assert jane.id == jane_id and jane.deleted_at is None and jane.quota_mb == 7
    assert verify_password("new password", jane.password)


@pytest.mark.parametrize(
    ("email", "password", "quota", "message"),
    [
        ("jane", "p1", "0", "exactly one @"),
        ("ja ne@example.com", "p1", "0", "must not contain spaces"),
        ("jane+tag@example.com", "p1", "0", "may only contain a-z 0-9 . _ -"),
        ("a" * 65 + "@example.com", "p1", "0", "longer than 64"),
        ("jane@example.com", "p1", "-1", "between 0 and 10,000,000 MB"),
        ("jane@example.com", "p1", "abc", "whole number of MB"),
        ("jane@example.com", "p1", "1.5", "whole number of MB"),
        ("jane@example.com", "p1", "10000001", "between 0 and 10,000,000 MB"),
        ("jane@example.com", "", "0", "This field is required."),
        ("jane@example.com", "   ", "0", "Enter a password."),
        ("jane@example.com", "é" * 37, "0", "longer than 72 bytes"),
    ],
)
def test_add_account_refuses_bad_input_and_writes_nothing(app, admin, email, password, quota, message):
    add_domain(app)
    before = snapshot(app)
    response = admin.post("/admin/accounts/new/", {"email": email, "password": password, "quota_mb": quota})
    assert response.status_code == 422
    assert message in response.text
    assert snapshot(app) == before


# --- the account page -------------------------------------------------------------------------------


def test_edit_display_name_quota_and_status(app, admin):
    add_domain(app)
    jane = add_account(app, "jane@example.com")
    details = {"display_name": "Jane Doe", "quota_mb": "250", "status": "suspended", "version": opened_version(admin, jane)}
    response = admin.post(f"/admin/accounts/edit/?id={jane}", details)
    assert response.status_code == 302
    saved = account(app, "jane@example.com")
    assert (saved.display_name, saved.quota_mb, saved.is_active) == ("Jane Doe", 250, False)
    assert "Account saved." in admin.get(response.location).text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"display_name": "x" * 256, "quota_mb": "1", "status": "active"}, "longer than 255"),
        ({"display_name": "x", "quota_mb": "-5", "status": "active"}, "between 0 and"),
        ({"display_name": "x", "quota_mb": "1", "status": "deleted"}, "Not a valid choice"),
    ],
)
def test_edit_refuses_bad_input_and_changes_nothing(app, admin, data, message):
    add_domain(app)
    jane = add_account(app, "jane@example.com")
    before = snapshot(app)
    response = admin.post(f"/admin/accounts/edit/?id={jane}", {**data, "version": opened_version(admin, jane)})
    assert response.status_code == 422 and message in response.text
    assert snapshot(app) == before


def test_unknown_account_page_is_404(admin):
    assert admin.get("/admin/accounts/edit/?id=999").status_code == 404
    assert admin.get("/admin/accounts/edit/?id=abc").status_code == 404


def test_reset_password(app, admin):
    add_domain(app)
    jane = add_account(app, "jane@example.com", password="old password")
    url, version = f"/admin/accounts/password/?id={jane}", opened_version(admin, jane)
    mismatch = admin.post(url, {"new_password": "new password", "confirm_password": "new passworD", "version": version})
    assert mismatch.status_code == 422 and "The two passwords do not match." in mismatch.text
    empty = admin.post(url, {"new_password": "", "confirm_password": "", "version": version})
    assert empty.status_code == 422 and "Enter a password." in empty.text
    assert verify_password("old password", account(app, "jane@example.com").password)
    done = admin.post(url, {"new_password": "new password", "confirm_password": "new password", "version": version})
    assert done.status_code == 302
    stored = account(app, "jane@example.com").password
    assert verify_password("new password", stored) and not verify_password("old password", stored)


def test_panel_synced_account_warns_that_the_panel_overwrites_passwords(app, admin):
    add_domain(app)
    jane = add_account(app, "jane@example.com")
    assert "next password sync will overwrite" not in admin.get(f"/admin/accounts/edit/?id={jane}").text
    with app.app_context():
        get_session().get(MailAccount, jane).last_synced_at = utcnow()
        get_session().commit()
    page = admin.get(f"/admin/accounts/edit/?id={jane}").text
    assert "next password sync will overwrite" in page and "MAIL_SYNC_SECRET" in page


def test_force_disable_two_factor_needs_confirmation(app, admin):
    add_domain(app)
    jane = add_account(app, "jane@example.com")
    with app.app_context():
        get_session().add(UserTwoFactor(email="jane@example.com", secret="s", enabled_at=utcnow()))
        get_session().commit()
    assert "Force disable 2FA" in admin.get(f"/admin/accounts/edit/?id={jane}").text
    refused = admin.post(f"/admin/accounts/two-factor/?id={jane}", {})
    assert refused.status_code == 422 and "Tick the box to confirm." in refused.text
    assert rows(app, sa.select(UserTwoFactor.email)) == [("jane@example.com",)]
    admin.post(f"/admin/accounts/two-factor/?id={jane}", {"confirm": "y"})
    assert rows(app, sa.select(UserTwoFactor.email)) == []
    assert "2FA is off." in admin.get(f"/admin/accounts/edit/?id={jane}").text


# --- delete -----------------------------------------------------------------------------------------


@pytest.fixture
def jane_with_everything(app, tmp_path):
    """jane@ with an alias of her own, a shared alias, an autoresponder, a group and 2FA."""
    add_domain(app)
    jane = add_account(app, "jane@example.com")
    add_account(app, "bob@example.com")
    with app.app_context():
        db = get_session()
        domain_id = db.get(MailAccount, jane).domain_id
        db.add_all([
            MailAlias(domain_id=domain_id, alias_email="j@example.com", destination_email="jane@example.com"),
            MailAlias(domain_id=domain_id, alias_email="team@example.com", destination_email="jane@example.com"),
            MailAlias(domain_id=domain_id, alias_email="team@example.com", destination_email="bob@example.com"),
            MailAutoresponder(email="jane@example.com", subject="Away", body="Back soon"),
            UserTwoFactor(email="jane@example.com", secret="s", enabled_at=utcnow()),
            MailGroup(id=1, name="staff"),
        ])
        db.flush()
        db.add(MailGroupMember(group_id=1, account_id=jane))
        db.commit()
    maildir = tmp_path / "mail" / "example.com" / "jane" / "Maildir"
    (maildir / "cur").mkdir(parents=True)
    (maildir / "cur" / "1.msg").write_text("hello")
    return jane, maildir


def test_delete_dialog_and_wrong_password_delete_nothing(app, admin, jane_with_everything):
    jane, _ = jane_with_everything
    dialog = admin.get(f"/admin/accounts/delete/?id={jane}", htmx=True)
    assert dialog.status_code == 200 and "<html" not in dialog.text and "Your admin password" in dialog.text
    before = snapshot(app)
    wrong = admin.post(f"/admin/accounts/delete/?id={jane}", {"admin_password": "not it"})
    assert wrong.status_code == 422 and "Wrong admin password: nothing was deleted." in wrong.text
    assert snapshot(app) == before


def test_delete_runs_the_cascade_and_shows_the_maildir_hint(app, admin, jane_with_everything, tmp_path):
    jane, maildir = jane_with_everything
    posted = admin.post(f"/admin/accounts/delete/?id={jane}", {"admin_password": ADMIN_PASSWORD})
    # Post/Redirect/Get: the report is a page of its own, and reloading it posts nothing.
    assert posted.status_code == 303 and posted.location == "/admin/accounts/deleted/"
    response = admin.client.get(posted.location)
    assert response.status_code == 200
    assert "Account jane@example.com deleted." in admin.client.get(posted.location).text  # a reload
    assert "Account jane@example.com deleted." in response.text
    assert "1 alias removed (j@example.com), 2 alias destinations removed" in response.text
    assert "1 autoresponder" in response.text and "1 group membership" in response.text
    assert f"rm -rf {maildir}" in response.text
    assert account(app, "jane@example.com") is None
    assert rows(app, sa.select(MailAlias.alias_email, MailAlias.destination_email)) == [("team@example.com", "bob@example.com")]
    assert rows(app, sa.select(MailAutoresponder.id)) == []
    assert rows(app, sa.select(MailGroupMember.id)) == []
    assert rows(app, sa.select(UserTwoFactor.id)) == []
    assert (maildir / "cur" / "1.msg").read_text() == "hello"  # files are never touched


# --- bulk actions -----------------------------------------------------------------------------------

ACTION = "/admin/accounts/action/"


def test_bulk_suspend_three_announces_and_rerenders(app, admin, three):
    response = admin.post(ACTION, {"action": "suspend", "rowid": three, "url": LIST + "?q=a"}, htmx=True)
    assert response.status_code == 200
    assert '"3 accounts suspended."' in response.headers["HX-Trigger"]
    assert "<html" not in response.text and emails_on(response.text) == ["alice@example.com"]  # the ?q=a view
    assert rows(app, sa.select(MailAccount.is_active).distinct()) == [(False,)]
    back = admin.post(ACTION, {"action": "unsuspend", "rowid": three[:1], "url": LIST}, htmx=True)
    assert '"1 account unsuspended."' in back.headers["HX-Trigger"]


def test_bulk_without_javascript_redirects_with_a_flash(admin, three):
    response = admin.post(ACTION, {"action": "suspend", "rowid": three, "url": LIST + "?q=a"})
    assert response.status_code == 302 and response.location == LIST + "?q=a"
    assert "3 accounts suspended." in admin.get(response.location).text


def test_bulk_quota(app, admin, three):
    response = admin.post(ACTION, {"action": "quota", "rowid": three[:2], "quota_mb": "512", "url": LIST}, htmx=True)
    assert '"2 accounts set to the new quota."' in response.headers["HX-Trigger"]
    assert rows(app, sa.select(MailAccount.email, MailAccount.quota_mb).order_by(MailAccount.email)) == [
        ("alice@example.com", 512), ("bob@example.com", 512), ("carol@other.org", 0)
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"action": "suspend"}, "Select at least one account first."),
        ({"action": "quota", "quota_mb": "", "rowid": "1"}, "Enter the new quota in MB (0 = unlimited)."),
        ({"action": "quota", "quota_mb": "-1", "rowid": "1"}, "between 0 and 10,000,000 MB"),
        ({"action": "quota", "quota_mb": "lots", "rowid": "1"}, "whole number of MB"),
        ({"action": "delete", "admin_password": "wrong", "rowid": "1"}, "Wrong admin password: nothing was deleted."),
        ({"action": "delete", "rowid": "1"}, "Enter your admin password."),
        ({"action": "delete", "admin_password": "", "rowid": "1"}, "Enter your admin password."),
        # With nothing ticked, every action says so first (not what else it is missing).
        ({"action": "quota", "quota_mb": ""}, "Select at least one account first."),
        ({"action": "quota", "quota_mb": "abc"}, "Select at least one account first."),
        ({"action": "delete", "admin_password": ""}, "Select at least one account first."),
        ({"action": "unsuspend"}, "Select at least one account first."),
    ],
)
def test_bulk_refusals_say_why_and_change_nothing(app, admin, three, data, message):
    before = snapshot(app)
    response = admin.post(ACTION, {**data, "url": LIST}, htmx=True)
    assert response.status_code == 422
    assert message in response.headers["HX-Trigger"] and '"error"' in response.headers["HX-Trigger"]
    assert snapshot(app) == before


def test_a_refused_bulk_action_keeps_the_ticked_rows(admin, three):
    response = admin.post(ACTION, {"action": "quota", "quota_mb": "abc", "rowid": three[:2], "url": LIST}, htmx=True)
    assert response.status_code == 422
    ticked = re.findall(r'name="rowid" value="(\d+)"[^>]*checked', response.text)
    assert sorted(ticked) == sorted(str(i) for i in three[:2])
    assert '<option value="quota" selected>' in response.text and 'value="abc"' in response.text


def test_a_refused_bulk_delete_never_sends_the_password_back(admin, three):
    response = admin.post(ACTION, {"action": "delete", "admin_password": "wrong-secret", "rowid": three[:1], "url": LIST}, htmx=True)
    assert response.status_code == 422 and '<option value="delete" selected>' in response.text
    assert "wrong-secret" not in response.text


def test_bulk_with_a_stale_id_applies_the_rest_and_says_what_was_skipped(app, admin, three):
    response = admin.post(ACTION, {"action": "suspend", "rowid": [three[0], 9999, "junk"], "url": LIST}, htmx=True)
    assert "1 account suspended. 2 selected rows skipped: no longer there." in response.headers["HX-Trigger"]
    assert not account(app, "alice@example.com").is_active


def test_bulk_delete_with_password(app, admin, three, tmp_path):
    response = admin.post(ACTION, {"action": "delete", "rowid": three[:2], "admin_password": ADMIN_PASSWORD, "url": LIST}, htmx=True)
    assert "2 accounts deleted (Maildirs are left on disk)." in response.headers["HX-Trigger"]
    assert emails_on(response.text) == ["carol@other.org"]
    assert rows(app, sa.select(MailAccount.email)) == [("carol@other.org",)]


def test_toast_text_with_html_stays_text(app, admin):
    """Toasts go through HX-Trigger JSON and are shown with textContent by opmail.js."""
    assert "text.textContent = message" in (Path(app.root_path) / "static" / "opmail.js").read_text()
