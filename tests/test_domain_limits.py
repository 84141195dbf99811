"""Per-domain limits and defaults (rules.limits): every path that adds mailboxes, quota or aliases
to a domain respects them, says which limit it hit, and writes nothing when it refuses."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from opmail.db import get_session
from opmail.models import AdminEvent, MailAccount, MailDomain
from opmail.rules import aliases, groups
from tests.helpers import SYNC_SECRET, add_account, add_domain, rows, snapshot, sync_call
from tests.test_csv import CONFIRM, HEADER, problems_on, token_of, upload
from tests.test_query_counts import count_statements, fill
from tests.test_sync_concurrency import in_parallel

PASSWORD = "a long password"


@pytest.fixture
def app_overrides():
    return {"MAIL_SYNC_SECRET": SYNC_SECRET}


def set_limits(app, domain_id: int, **limits) -> None:
    with app.app_context():
        get_session().execute(sa.update(MailDomain).where(MailDomain.id == domain_id).values(**limits))
        get_session().commit()


def quotas(app) -> dict[str, int]:
    return dict(rows(app, sa.select(MailAccount.email, MailAccount.quota_mb)))


def add(admin, email: str, quota: str = ""):
    return admin.post("/admin/accounts/new/", {"email": email, "password": PASSWORD, "quota_mb": quota})


def toast_of(response) -> str:
    return json.loads(response.headers["HX-Trigger"])["opmail:toast"]["message"]


# --- the domain's page --------------------------------------------------------------------------------


def test_the_domains_list_says_unlimited_for_a_domain_whose_mailboxes_have_no_quota(app, admin):
    add_domain(app)
    add_account(app, "jane@example.com", quota_mb=0)
    row = admin.get("/admin/domains/").text.split('data-domain="example.com"')[1].split("</tr>")[0]
    assert '<td data-use="quota" class="text-nowrap">Unlimited</td>' in row


def test_the_domain_page_saves_limits_and_the_list_shows_use_against_them(app, admin):
    example = add_domain(app)
    add_account(app, "jane@example.com", quota_mb=300)
    page = admin.get(f"/admin/domains/edit/?id={example}")
    assert page.status_code == 200 and "Uses 1 now" in page.text and "300 MB given out now" in page.text
    saved = admin.post(
        f"/admin/domains/edit/?id={example}",
        {"max_accounts": "200", "max_aliases": "5", "total_quota_mb": "1,000", "default_quota_mb": "100"},
    )
    assert saved.status_code == 302
    assert "Limits of example.com saved." in admin.get(saved.location).text
    assert rows(app, sa.select(MailDomain.max_accounts, MailDomain.max_aliases, MailDomain.total_quota_mb, MailDomain.default_quota_mb)) == [(200, 5, 1000, 100)]
    row = admin.get("/admin/domains/").text.split('data-domain="example.com"')[1].split("</tr>")[0]
    assert ">1</a> <span" in row and "/ 200</span>" in row
    assert '<td data-use="aliases">0 <span class="text-muted">/ 5</span></td>' in row
    assert "300 MB <span" in row and "/ 1,000 MB</span>" in row
    events = rows(app, sa.select(AdminEvent.action, AdminEvent.changes))
    assert events[-1][0] == "domain.limits"
    assert json.loads(events[-1][1])["example.com"]["max_accounts"] == [None, 200]
    # Empty again: no limit.
    admin.post(f"/admin/domains/edit/?id={example}", {"max_accounts": "", "max_aliases": "", "total_quota_mb": "", "default_quota_mb": ""})
    assert rows(app, sa.select(MailDomain.max_accounts, MailDomain.total_quota_mb)) == [(None, None)]


def test_the_list_marks_a_domain_at_its_limit(app, admin):
    example = add_domain(app)
    add_account(app, "jane@example.com")
    set_limits(app, example, max_accounts=1)
    row = admin.get("/admin/domains/").text.split('data-domain="example.com"')[1].split("</tr>")[0]
    assert '<span class="text-danger font-weight-bold">/ 1</span>' in row


@pytest.mark.parametrize(
    ("field", "typed", "message"),
    [
        ("max_accounts", "abc", "Enter a whole number, or leave it empty for no limit."),
        ("max_aliases", "-1", "Enter a whole number, or leave it empty for no limit."),
        ("total_quota_mb", "1.5", "Enter a whole number, or leave it empty for no limit."),
        ("total_quota_mb", "99999999", "Enter a whole number up to 10,000,000"),
        ("default_quota_mb", "5000", "With a total quota of 1,000 MB the default quota must be from 1 to 1,000 MB"),
    ],
)
def test_the_domain_page_refuses_bad_limits_and_keeps_the_old(app, admin, field, typed, message):
    example = add_domain(app)
    before = snapshot(app)
    form = {"max_accounts": "", "max_aliases": "", "total_quota_mb": "1000", "default_quota_mb": "", field: typed}
    response = admin.post(f"/admin/domains/edit/?id={example}", form)
    assert response.status_code == 422 and message in response.text
    assert snapshot(app) == before


def test_the_domain_page_of_a_missing_domain_is_404(admin):
    assert admin.get("/admin/domains/edit/?id=999").status_code == 404
    assert admin.get("/admin/domains/edit/?id=abc").status_code == 404


# --- Add Account --------------------------------------------------------------------------------------


def test_add_account_stops_at_max_accounts(app, admin):
    example = add_domain(app)
    add_account(app, "a@example.com")
    add_account(app, "b@example.com")
    set_limits(app, example, max_accounts=2)
    before = snapshot(app)
    response = add(admin, "c@example.com")
    assert response.status_code == 422
    assert "Over the domain&#39;s limit: example.com may have at most 2 mailboxes and has 2." in response.text
    assert snapshot(app) == before


def test_a_deleted_by_the_panel_account_does_not_count(app, admin):
    example = add_domain(app)
    add_account(app, "a@example.com")
    with app.app_context():
        get_session().execute(sa.update(MailAccount).values(deleted_at=sa.func.now()))
        get_session().commit()
    set_limits(app, example, max_accounts=1)
    assert add(admin, "b@example.com").status_code == 302


def test_add_account_without_a_quota_gets_the_domain_default(app, admin):
    example = add_domain(app)
    set_limits(app, example, default_quota_mb=512)
    assert add(admin, "jane@example.com").status_code == 302
    assert add(admin, "bob@example.com", "0").status_code == 302  # 0 typed: unlimited, as asked
    assert quotas(app) == {"jane@example.com": 512, "bob@example.com": 0}


def test_add_account_stays_within_the_total_quota(app, admin):
    example = add_domain(app)
    add_account(app, "a@example.com", quota_mb=600)
    set_limits(app, example, total_quota_mb=1000)
    before = snapshot(app)
    over = add(admin, "b@example.com", "500")
    assert over.status_code == 422
    assert "the mailboxes of example.com may use 1,000 MB together; 600 MB are given out already and this asks for 500 MB more." in over.text
    unlimited = add(admin, "b@example.com", "0")
    assert unlimited.status_code == 422 and "0 (unlimited) is not allowed there" in unlimited.text
    assert snapshot(app) == before
    assert add(admin, "b@example.com", "400").status_code == 302


# --- Edit Quota (bulk) --------------------------------------------------------------------------------


def test_bulk_edit_quota_stays_within_each_domains_total(app, admin):
    example = add_domain(app)
    other = add_domain(app, "other.org")
    ids = [add_account(app, f"u{n}@example.com", quota_mb=100) for n in range(3)]
    ids.append(add_account(app, "x@other.org", quota_mb=100))
    set_limits(app, example, total_quota_mb=1000)
    set_limits(app, other, total_quota_mb=10_000)
    before = snapshot(app)
    refused = admin.post(
        "/admin/accounts/action/", {"action": "quota", "rowid": ids, "url": "/admin/accounts/", "quota_mb": "400"}, htmx=True
    )
    assert "Over the domain's limit: the mailboxes of example.com may use 1,000 MB together" in toast_of(refused)
    assert snapshot(app) == before  # other.org's account unchanged too: all or nothing
    done = admin.post(
        "/admin/accounts/action/", {"action": "quota", "rowid": ids, "url": "/admin/accounts/", "quota_mb": "300"}, htmx=True
    )
    assert toast_of(done) == "4 accounts set to the new quota."
    assert set(quotas(app).values()) == {300}


def test_bulk_edit_quota_to_unlimited_is_refused_under_a_total(app, admin):
    example = add_domain(app)
    jane = add_account(app, "jane@example.com", quota_mb=100)
    set_limits(app, example, total_quota_mb=1000)
    refused = admin.post("/admin/accounts/action/", {"action": "quota", "rowid": [jane], "url": "/admin/accounts/", "quota_mb": "0"}, htmx=True)
    assert "0 (unlimited) is not allowed there" in toast_of(refused)
    assert quotas(app) == {"jane@example.com": 100}


# --- CSV import ---------------------------------------------------------------------------------------


def test_import_preview_names_the_limit_and_imports_nothing(app, admin):
    example = add_domain(app)
    add_account(app, "a@example.com")
    set_limits(app, example, max_accounts=2)
    before = snapshot(app)
    preview = upload(admin, HEADER + f"b@example.com,{PASSWORD},,,\nc@example.com,{PASSWORD},,,\n")
    assert problems_on(preview) == [
        ("2", "email", "Over the domain's limit: example.com may have at most 2 mailboxes and has 1; this adds 2."
         " Raise the limit on the domain's page, or delete a mailbox first.")
    ]
    assert 'name="token"' not in preview.text
    assert snapshot(app) == before


def test_import_checks_the_limits_again_when_it_writes(app, admin):
    example = add_domain(app)
    preview = upload(admin, HEADER + f"b@example.com,{PASSWORD},,,\nc@example.com,{PASSWORD},,,\n")
    token = token_of(preview)
    set_limits(app, example, max_accounts=1)  # lowered after the preview
    before = snapshot(app)
    response = admin.post(CONFIRM, {"token": token}, follow_redirects=True)
    assert "Over the domain&#39;s limit" in response.text
    assert snapshot(app) == before


def test_import_rows_without_a_quota_get_the_domain_default(app, admin):
    example = add_domain(app)
    set_limits(app, example, default_quota_mb=250, total_quota_mb=1000)
    preview = upload(admin, HEADER + f"b@example.com,{PASSWORD},,,\nc@example.com,{PASSWORD},700,,\n")
    assert admin.post(CONFIRM, {"token": token_of(preview)}).status_code == 302
    assert quotas(app) == {"b@example.com": 250, "c@example.com": 700}


# --- aliases and groups -------------------------------------------------------------------------------


def test_alias_creation_stops_at_max_aliases_groups_count(app, admin):
    example = add_domain(app)
    add_account(app, "jane@example.com")
    with app.app_context():
        aliases.create_alias("sales@example.com", "jane@example.com")
    set_limits(app, example, max_aliases=2)
    assert admin.post("/admin/groups/new/", {"name": "Team", "email": "team@example.com"}).status_code == 302
    before = snapshot(app)
    alias = admin.post("/admin/aliases/new/", {"alias_email": "info@example.com", "destinations": "jane@example.com"})
    assert alias.status_code == 422
    assert "Over the domain&#39;s limit: example.com may have at most 2 aliases (groups&#39; addresses count) and has 2." in alias.text
    group = admin.post("/admin/groups/new/", {"name": "Other", "email": "other@example.com"})
    assert group.status_code == 422 and "may have at most 2 aliases" in group.text
    assert snapshot(app) == before
    with app.app_context():  # a group without an address takes no place
        groups.save_group(None, "No address", None)


# --- the Panel's webhook ------------------------------------------------------------------------------


def test_webhook_create_over_max_accounts_is_422_naming_the_limit(app, client):
    example = add_domain(app)
    add_account(app, "a@example.com")
    set_limits(app, example, max_accounts=1)
    before = snapshot(app)
    response = sync_call(client, {"action": "create", "email": "b@example.com", "password": "x"})
    assert response.status_code == 422
    assert response.json == {
        "error": "Over the domain's limit: max_accounts.",
        "limit": "max_accounts",
        "errors": {"email": ["Over the domain's limit: example.com may have at most 1 mailbox and has 1."
                             " Raise the limit on the domain's page, or delete a mailbox first."]},
    }
    assert snapshot(app) == before
    # The existing account is still the Panel's to update.
    assert sync_call(client, {"action": "create", "email": "a@example.com", "password": "y"}).status_code == 200


def test_webhook_create_over_the_total_quota_is_422(app, client):
    example = add_domain(app)
    add_account(app, "a@example.com", quota_mb=900)
    set_limits(app, example, total_quota_mb=1000)
    before = snapshot(app)
    response = sync_call(client, {"action": "create", "email": "b@example.com", "password": "x", "quota_mb": 200})
    assert response.status_code == 422 and response.json["limit"] == "total_quota_mb"
    assert response.json["error"] == "Over the domain's limit: total_quota_mb."
    grown = sync_call(client, {"action": "create", "email": "a@example.com", "password": "x", "quota_mb": 1200})
    assert grown.status_code == 422 and grown.json["limit"] == "total_quota_mb"
    assert snapshot(app) == before
    assert sync_call(client, {"action": "create", "email": "b@example.com", "password": "x", "quota_mb": 100}).status_code == 200


def test_webhook_create_without_a_quota_gets_the_domain_default(app, client):
    example = add_domain(app)
    set_limits(app, example, default_quota_mb=2048)
    assert sync_call(client, {"action": "create", "email": "b@example.com", "password": "x"}).status_code == 200
    assert sync_call(client, {"action": "create", "email": "c@example.com", "password": "x", "quota_mb": 5}).status_code == 200
    assert sync_call(client, {"action": "create", "email": "d@new.example", "password": "x"}).status_code == 200
    assert quotas(app) == {"b@example.com": 2048, "c@example.com": 5, "d@new.example": 0}


def test_webhook_revive_counts_as_a_new_mailbox(app, client):
    example = add_domain(app)
    add_account(app, "a@example.com")
    assert sync_call(client, {"action": "delete", "email": "a@example.com"}).status_code == 200
    add_account(app, "b@example.com")
    set_limits(app, example, max_accounts=1)
    revived = sync_call(client, {"action": "create", "email": "a@example.com", "password": "x"})
    assert revived.status_code == 422 and revived.json["limit"] == "max_accounts"
    assert rows(app, sa.select(MailAccount.email).where(MailAccount.deleted_at.is_(None))) == [("b@example.com",)]


# --- statements and races -----------------------------------------------------------------------------


def test_the_domains_list_reads_limits_without_a_query_per_row(app, admin):
    fill(app, 2, 2)
    with count_statements(app) as small:
        admin.get("/admin/domains/")
    fill(app, 60, 5, prefix="more")
    with app.app_context():
        get_session().execute(sa.update(MailDomain).values(max_accounts=10, max_aliases=10, total_quota_mb=5000))
        get_session().commit()
    with count_statements(app) as large:
        page = admin.get("/admin/domains/").text
    assert "/ 5,000 MB" in page
    assert len(large) == len(small)


@pytest.mark.mariadb_only
def test_parallel_panel_creates_never_pass_max_accounts(app, live_server):
    example = add_domain(app)
    set_limits(app, example, max_accounts=5)
    bodies = [{"action": "create", "email": f"u{n}@example.com", "password": "x"} for n in range(20)]
    answers = in_parallel(live_server, bodies)
    assert sorted(status for status, _ in answers) == [200] * 5 + [422] * 15
    assert len(rows(app, sa.select(MailAccount.id))) == 5


@pytest.mark.mariadb_only
def test_parallel_admin_adds_never_pass_max_accounts(app, live_server):
    from concurrent.futures import ThreadPoolExecutor

    from opmail.rules import accounts
    from opmail.rules.limits import OverLimit

    example = add_domain(app)
    set_limits(app, example, max_accounts=3)

    def create(n: int) -> str:
        with app.app_context():
            try:
                accounts.create_account(f"u{n}@example.com", PASSWORD)
            except OverLimit:
                return "refused"
            finally:
                get_session().remove() if hasattr(get_session(), "remove") else get_session().close()
            return "created"

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(create, range(8)))
    assert sorted(results) == ["created"] * 3 + ["refused"] * 5
    assert len(rows(app, sa.select(MailAccount.id))) == 3


# --- Restore (bulk) and a group's address moving ------------------------------------------------------


def test_bulk_restore_stays_within_max_accounts(app, admin, client):
    example = add_domain(app)
    gone = add_account(app, "gone@example.com", quota_mb=100)
    assert sync_call(client, {"action": "delete", "email": "gone@example.com"}).status_code == 200
    add_account(app, "a@example.com", quota_mb=100)
    set_limits(app, example, max_accounts=1)
    before = snapshot(app)
    refused = admin.post("/admin/accounts/action/", {"action": "restore", "rowid": [gone], "url": "/admin/accounts/"}, htmx=True)
    assert toast_of(refused) == (
        "Over the domain's limit: example.com may have at most 1 mailbox and has 1; restoring 1 would pass it."
    )
    assert snapshot(app) == before
    set_limits(app, example, max_accounts=2, total_quota_mb=150)
    over_quota = admin.post("/admin/accounts/action/", {"action": "restore", "rowid": [gone], "url": "/admin/accounts/"}, htmx=True)
    assert "may use 150 MB together" in toast_of(over_quota)
    set_limits(app, example, total_quota_mb=200)
    done = admin.post("/admin/accounts/action/", {"action": "restore", "rowid": [gone], "url": "/admin/accounts/"}, htmx=True)
    assert toast_of(done) == "1 account restored."


def test_moving_a_groups_address_within_its_domain_takes_no_new_place(app, admin):
    example = add_domain(app)
    with app.app_context():
        group_id = groups.save_group(None, "Team", None, "team@example.com").id
    set_limits(app, example, max_aliases=1)
    with app.app_context():
        groups.save_group(group_id, "Team", None, "crew@example.com")
    assert rows(app, sa.select(sa.text("address")).select_from(sa.table("mail_addresses"))) == [("crew@example.com",)]


def test_a_quota_that_shrinks_passes_even_over_a_lowered_total(app, admin, client):
    """A limit lowered below what the domain uses stops growth; it never blocks going down."""
    example = add_domain(app)
    jane = add_account(app, "jane@example.com", quota_mb=800)
    add_account(app, "bob@example.com", quota_mb=800)
    set_limits(app, example, total_quota_mb=1000)
    down = admin.post("/admin/accounts/action/", {"action": "quota", "rowid": [jane], "url": "/admin/accounts/", "quota_mb": "700"}, htmx=True)
    assert toast_of(down) == "1 account set to the new quota."
    panel_down = sync_call(client, {"action": "create", "email": "bob@example.com", "password": "x", "quota_mb": 600})
    assert panel_down.status_code == 200
    up = sync_call(client, {"action": "create", "email": "bob@example.com", "password": "x", "quota_mb": 650})
    assert up.status_code == 422 and up.json["limit"] == "total_quota_mb"
    assert quotas(app) == {"jane@example.com": 700, "bob@example.com": 600}


def test_the_account_page_quota_stays_within_the_total_and_may_always_shrink(app, admin):
    from tests.helpers import opened_version

    example = add_domain(app)
    jane = add_account(app, "jane@example.com", quota_mb=600)
    add_account(app, "bob@example.com", quota_mb=600)
    set_limits(app, example, total_quota_mb=1000)  # lowered below the 1200 MB given out

    def save(quota: str):
        form = {"quota_mb": quota, "display_name": "", "status": "active", "version": opened_version(admin, jane)}
        return admin.post(f"/admin/accounts/edit/?id={jane}", form)

    before = snapshot(app)
    grown = save("700")
    assert grown.status_code == 422
    assert "Over the domain&#39;s limit: the mailboxes of example.com may use 1,000 MB together" in grown.text
    assert snapshot(app) == before
    assert save("500").status_code == 302
    assert quotas(app) == {"jane@example.com": 500, "bob@example.com": 600}
