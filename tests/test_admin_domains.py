"""Admin → Domains: add, counts, enable/disable, password-confirmed delete."""

from __future__ import annotations

import re
import threading
import time

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from opmail.db import get_engine, get_session
from opmail.models import MailAccount, MailAlias, MailDomain
from tests.conftest import ADMIN_PASSWORD
from tests.helpers import SYNC_SECRET, add_account, add_domain, rows, snapshot, sync_call


def test_add_domain_stores_lower_case_idna_and_shows_unicode(app, admin):
    response = admin.post("/admin/domains/new/", {"domain": " BÜCHER.de "})
    assert response.status_code == 302
    assert rows(app, sa.select(MailDomain.domain)) == [("xn--bcher-kva.de",)]
    page = admin.get(response.location).text
    assert "Domain bücher.de added." in page and "bücher.de" in page and "(xn--bcher-kva.de)" in page


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("localhost", "at least two labels"),
        ("exa mple.com", "spaces"),
        ("example.com.", "must not end with a dot"),
        ("-bad.com", "hyphen"),
        ("10.0.0.1", "IP addresses"),
        ("a@b.com", "domain name such as"),
        ("", "This field is required."),
    ],
)
def test_add_domain_refuses_bad_names(app, admin, name, message):
    before = snapshot(app)
    response = admin.post("/admin/domains/new/", {"domain": name})
    assert response.status_code == 422 and message in response.text
    assert snapshot(app) == before


def test_duplicate_domain_is_refused(app, admin):
    add_domain(app, "example.com")
    response = admin.post("/admin/domains/new/", {"domain": "EXAMPLE.com"})
    assert response.status_code == 422 and "The domain example.com already exists." in response.text


def test_create_page_prefills_the_domain_from_the_account_form_link(admin):
    assert 'value="nowhere.org"' in admin.get("/admin/domains/new/?domain=nowhere.org").text


def test_list_counts_accounts_and_aliases(app, admin):
    example = add_domain(app, "example.com")
    add_domain(app, "empty.org")
    add_account(app, "a@example.com")
    add_account(app, "b@example.com")
    with app.app_context():
        get_session().add_all([
            MailAlias(domain_id=example, alias_email="x@example.com", destination_email="a@example.com"),
            MailAlias(domain_id=example, alias_email="x@example.com", destination_email="b@example.com"),
        ])
        get_session().commit()
    page = admin.get("/admin/domains/").text
    example_row = page.split('data-domain="example.com"')[1].split("</tr>")[0]
    assert ">2</a>" in example_row and "<td data-use=\"aliases\">1</td>" in example_row
    empty_row = page.split('data-domain="empty.org"')[1].split("</tr>")[0]
    assert ">0</a>" in empty_row and "<td data-use=\"aliases\">0</td>" in empty_row


def test_disable_and_enable_in_place(app, admin):
    domain = add_domain(app)
    response = admin.post(f"/admin/domains/toggle/?id={domain}", htmx=True)
    assert response.status_code == 200 and "<html" not in response.text and "Disabled" in response.text
    assert "its accounts cannot log in" in response.headers["HX-Trigger"]
    assert rows(app, sa.select(MailDomain.is_active)) == [(False,)]
    admin.post(f"/admin/domains/toggle/?id={domain}")
    assert rows(app, sa.select(MailDomain.is_active)) == [(True,)]


def test_a_big_delete_report_fits_the_session_cookie(app, admin):
    """The page after the redirect reads the report from the session cookie (4 KB in a browser):
    the first names and the counts, never every address."""
    domain = add_domain(app, "a-rather-long-domain-name-for-the-cookie.example")
    for n in range(60):
        add_account(app, f"someone-with-a-long-local-part-{n:02d}@a-rather-long-domain-name-for-the-cookie.example")
    form = {"admin_password": ADMIN_PASSWORD, "newest_account": re.search(
        r'name="newest_account" value="(\d+)"', admin.get(f"/admin/domains/delete/?id={domain}").text).group(1)}
    posted = admin.post(f"/admin/domains/delete/?id={domain}", form)
    assert posted.status_code == 303
    cookie = next(c for c in posted.headers.getlist("Set-Cookie") if c.startswith("session="))
    assert len(cookie) < 4000
    done = admin.client.get(posted.location)
    assert "60 accounts: someone-with-a-long-local-part-00@" in done.text
    assert re.search(r"… and [1-9]\d* more</li>", done.text)


def test_the_deleted_page_without_a_delete_goes_to_the_list(admin):
    response = admin.client.get("/admin/domains/deleted/")
    assert response.status_code == 302 and response.location == "/admin/domains/"


def test_delete_lists_what_goes_and_needs_the_password(app, admin):
    domain = add_domain(app)
    add_account(app, "a@example.com")
    with app.app_context():
        get_session().add(MailAlias(domain_id=domain, alias_email="x@example.com", destination_email="ext@else.net"))
        get_session().commit()
    dialog = admin.get(f"/admin/domains/delete/?id={domain}")
    assert "1 account" in dialog.text and "1 alias" in dialog.text
    before = snapshot(app)
    wrong = admin.post(f"/admin/domains/delete/?id={domain}", {"admin_password": "nope"})
    assert wrong.status_code == 422 and "Wrong admin password: nothing was deleted." in wrong.text
    assert snapshot(app) == before
    posted = admin.post(f"/admin/domains/delete/?id={domain}", {"admin_password": ADMIN_PASSWORD})
    assert posted.status_code == 303 and posted.location == "/admin/domains/deleted/"
    done = admin.client.get(posted.location)
    assert done.status_code == 200 and "Domain example.com deleted." in done.text
    assert "rm -rf" in done.text and "/example.com/a/Maildir" in done.text
    assert rows(app, sa.select(MailDomain.id)) == []
    assert rows(app, sa.select(MailAccount.id)) == []
    assert rows(app, sa.select(MailAlias.id)) == []


def test_unknown_domain_is_404(admin):
    assert admin.get("/admin/domains/delete/?id=404").status_code == 404
    assert admin.get("/admin/domains/delete/").status_code == 404
    assert admin.post("/admin/domains/toggle/?id=404").status_code == 404


# --- a domain deleted while accounts are added to it ------------------------------------------------

_NEWEST_RE = re.compile(r'name="newest_account" value="(\d+)"')


def delete_form(admin, domain: int) -> dict[str, str]:
    """The delete dialog's form as a browser sends it: the password and what the dialog showed."""
    dialog = admin.get(f"/admin/domains/delete/?id={domain}")
    return {"admin_password": ADMIN_PASSWORD, "newest_account": _NEWEST_RE.search(dialog.text).group(1)}


def test_accounts_added_after_the_dialog_stop_the_delete(app, admin):
    domain = add_domain(app)
    add_account(app, "a@example.com")
    form = delete_form(admin, domain)
    add_account(app, "b@example.com")  # the Panel, another admin or an import, meanwhile
    before = snapshot(app)
    refused = admin.post(f"/admin/domains/delete/?id={domain}", form)
    assert refused.status_code == 409
    assert "1 account was added to example.com meanwhile: nothing was deleted. Look again" in refused.text
    assert "2 accounts" in refused.text  # the dialog again, as the domain is now
    assert snapshot(app) == before
    done = admin.post(f"/admin/domains/delete/?id={domain}", delete_form(admin, domain), follow_redirects=True)
    assert done.status_code == 200 and "Domain example.com deleted." in done.text
    assert rows(app, sa.select(MailAccount.email)) == []


def test_an_empty_domain_that_gained_an_account_is_not_deleted(app, admin):
    domain = add_domain(app)
    form = delete_form(admin, domain)
    assert form["newest_account"] == "0"
    add_account(app, "a@example.com")
    assert admin.post(f"/admin/domains/delete/?id={domain}", form).status_code == 409
    assert rows(app, sa.select(MailAccount.email)) == [("a@example.com",)]


@pytest.mark.parametrize("app_overrides", [{"MAIL_SYNC_SECRET": SYNC_SECRET}])
def test_a_panel_create_during_the_delete_waits_and_adds_the_domain_again(app, admin):
    """The Panel's create lands while the delete runs (after it read the domain's accounts, before
    it removed the domain): it waits for the delete, then adds the domain again. Neither a 500."""
    domain = add_domain(app)
    add_account(app, "a@example.com")
    form = delete_form(admin, domain)
    panel_answers = []

    def panel_create() -> None:
        create = {"action": "create", "email": "jane@example.com", "password": "from the panel"}
        panel_answers.append(sync_call(app.test_client(), create))

    panel = threading.Thread(target=panel_create)

    def panel_calls_now(connection, cursor, statement, *args) -> None:
        if "FROM mail_accounts" in statement and "domain_id IN" in statement and not panel.is_alive():
            panel.start()
            time.sleep(0.5)  # enough for the call to commit, were nothing holding it back

    with app.app_context():
        engine = get_engine()
    event.listen(engine, "before_cursor_execute", panel_calls_now)
    try:
        deleted = admin.post(f"/admin/domains/delete/?id={domain}", form)
    finally:
        event.remove(engine, "before_cursor_execute", panel_calls_now)
        panel.join(timeout=30)
    assert deleted.status_code == 303
    deleted = admin.client.get(deleted.location)
    assert deleted.status_code == 200 and "Domain example.com deleted." in deleted.text
    assert "/example.com/a/Maildir" in deleted.text and "/example.com/jane/Maildir" not in deleted.text
    assert [(answer.status_code, answer.json) for answer in panel_answers] == [(200, {"status": "ok"})]
    assert rows(app, sa.select(MailDomain.domain)) == [("example.com",)]
    assert rows(app, sa.select(MailAccount.email)) == [("jane@example.com",)]
