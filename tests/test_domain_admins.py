"""Domain admins: an admin given some domains sees and changes only those, whatever URL it types."""

from __future__ import annotations

import html
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import url_for
from sqlalchemy import select

from opmail.auth import set_admin_password
from opmail.db import get_session
from opmail.models import AdminEvent, MailAccount
from opmail.rules import aliases, autoresponders, groups
from tests.conftest import AdminClient
from tests.helpers import add_account, add_domain, rows, snapshot

DORA_PASSWORD = "dora's own password"
LIST = "/admin/accounts/"
ACTION = "/admin/accounts/action/"
# Every name of domain B is unlike anything of A, so finding it in a page means B leaked (after
# taking out what the request itself sent, which a form may show back).
B_MARKERS = ("bravo", "bob.secret", "Bobby Hidden")


@pytest.fixture
def world(app, admin_user):
    """alpha.example (Dora's) and bravo.example (not hers), each with accounts, an alias, a group
    and an autoresponder; a server admin ``admin`` and the domain admin ``dora``."""
    ids = {"alpha": add_domain(app, "alpha.example"), "bravo": add_domain(app, "bravo.example")}
    ids["ann"] = add_account(app, "ann@alpha.example")
    ids["amy"] = add_account(app, "amy@alpha.example")
    ids["bob"] = add_account(app, "bob.secret@bravo.example", display_name="Bobby Hidden")
    with app.app_context():
        aliases.create_alias("sales@alpha.example", "ann@alpha.example")
        aliases.create_alias("bills@bravo.example", "bob.secret@bravo.example")
        ids["bravo_group"] = groups.save_group(None, "bravo-team", None, "team@bravo.example").id
        reply = autoresponders.AutoresponderInput("Away", "Back soon", None, None, True)
        ids["bravo_reply"] = autoresponders.create_autoresponder("bob.secret@bravo.example", reply).id
        set_admin_password("dora", DORA_PASSWORD, ["alpha.example"])
    return ids


@pytest.fixture
def dora(app, world):
    client = AdminClient(app.test_client())
    assert client.login("dora", DORA_PASSWORD).status_code == 302
    return client


def test_a_domain_admin_lists_only_its_domains_accounts(dora, admin):
    page = dora.get(LIST).text
    assert "ann@alpha.example" in page and "amy@alpha.example" in page
    assert not any(marker in page for marker in B_MARKERS)
    # A search, a filter by the other domain and the CSV export find nothing of it either.
    assert "bob.secret" not in dora.get(LIST + "?q=bob").text
    assert "bob.secret" not in dora.get(LIST + "?domain=bravo.example").text
    export = dora.get("/admin/accounts/export/")
    assert "ann@alpha.example" in export.text and "bravo" not in export.text
    # The server admin still sees both.
    everything = admin.get(LIST).text
    assert "ann@alpha.example" in everything and "bob.secret@bravo.example" in everything


def test_the_dashboard_counts_only_its_domains(dora):
    page = dora.get("/admin/").text
    assert "Recent Syncs" not in page  # the Panel's calls are the server admin's
    assert not any(marker in page for marker in B_MARKERS)


def test_another_domains_account_page_is_404(app, dora, world):
    assert dora.get(f"/admin/accounts/edit/?id={world['ann']}").status_code == 200
    assert dora.get(f"/admin/accounts/edit/?id={world['bob']}").status_code == 404


def test_a_bulk_suspend_changes_only_its_own_accounts(app, dora, world):
    response = dora.post(ACTION, {"action": "suspend", "rowid": [world["ann"], world["bob"]], "url": LIST}, htmx=True)
    assert response.status_code == 200
    active = dict(rows(app, select(MailAccount.email, MailAccount.is_active)))
    assert active == {"ann@alpha.example": False, "amy@alpha.example": True, "bob.secret@bravo.example": True}


def test_adding_an_account_on_another_domain_is_refused(app, dora):
    page = dora.get("/admin/accounts/new/")
    response = dora.post(
        "/admin/accounts/new/",
        {"email": "eve@bravo.example", "password": "a long mailbox password", "quota_mb": "0"},
    )
    assert response.status_code == 422
    assert "bravo.example is not one of the domains you manage" in response.text
    assert page.status_code == 200
    assert "eve@bravo.example" not in [email for (email,) in rows(app, select(MailAccount.email))]


@pytest.mark.parametrize("url", ["/admin/dovecot/", "/admin/sync-log/", "/admin/domains/new/"])
def test_server_pages_are_refused(dora, url):
    assert dora.get(url).status_code == 403


def test_the_audit_log_shows_its_domains_entries_only(app, dora, admin, world):
    admin.post(ACTION, {"action": "suspend", "rowid": [world["bob"]], "url": LIST}, htmx=True)
    dora.post(ACTION, {"action": "suspend", "rowid": [world["amy"]], "url": LIST}, htmx=True)
    actors = {event.actor: event.targets for event in rows(app, select(AdminEvent))}
    assert actors == {"admin": "bob.secret@bravo.example", "dora": "amy@alpha.example"}
    page = dora.get("/admin/audit/").text
    assert "amy@alpha.example" in page and "bob.secret" not in page


def _tries(app, world) -> list[tuple[str, str, dict]]:
    """(method, url, form) for every opmail admin URL in the URL map, each aimed at domain B: every
    id of B's rows in ``id``, B's names in every other field a view reads."""
    b_ids = [world[name] for name in ("bravo", "bob", "bravo_group", "bravo_reply")]
    b_names = {
        "email": "bob.secret@bravo.example", "alias": "bills@bravo.example", "alias_email": "bills@bravo.example",
        "domain": "bravo.example", "q": "bob", "destinations": "ann@alpha.example",
        "admin_password": DORA_PASSWORD, "quota_mb": "1", "action": "delete", "url": LIST,
    }
    tries = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if not rule.rule.startswith("/admin") or rule.endpoint.startswith(("opmail_auth.", "opmail.static")):
                continue
            for raw_id in b_ids:
                url = url_for(rule.endpoint, **dict.fromkeys(rule.arguments, raw_id), id=raw_id, **b_names)
                form = {**b_names, "rowid": str(raw_id), "group_id": str(world["bravo_group"])}
                tries.extend((method, url, form) for method in ("GET", "POST") if method in rule.methods)
    return tries


def _query_values(url: str) -> list[str]:
    return [value for values in parse_qs(urlsplit(url).query).values() for value in values]


def test_no_opmail_url_reads_or_writes_another_domain(app, dora, world):
    """The IDOR sweep: read from the URL map, so a URL added later without scoping fails here."""
    before = snapshot(app)
    tries = _tries(app, world)
    assert len({url.split("?")[0] for _, url, _ in tries}) > 20
    for method, url, form in tries:
        response = dora.get(url) if method == "GET" else dora.post(url, form)
        assert response.status_code < 500, (method, url)
        body = response.get_data(as_text=True)
        for sent in sorted({*form.values(), *_query_values(url)}, key=len, reverse=True):
            body = body.replace(sent, "").replace(html.escape(sent), "")
        leaked = [marker for marker in B_MARKERS if marker in body]
        assert response.status_code in (403, 404) or not leaked, (method, url, response.status_code, leaked)
    # Dora may change her own domain's rows on the way (an id of B can be an id of A's in another
    # table); every row of B stays as it was, and no new row names B.
    assert _rows_of_b(snapshot(app)) == _rows_of_b(before)


def _rows_of_b(tables: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    return {name: [row for row in table if "bravo" in repr(row)] for name, table in tables.items()}


def test_create_admin_with_an_unknown_domain_creates_nobody(app, runner, world):
    result = runner.invoke(
        args=["opmail", "create-admin", "carol", "--password-stdin", "--domain", "alpha.example", "--domain", "nowhere.example"],
        input="carol's long password\n",
    )
    assert result.exit_code != 0 and "No such domain: nowhere.example" in result.output
    with app.app_context():
        from opmail.models import Admin

        assert get_session().scalar(select(Admin).where(Admin.username == "carol")) is None


def test_a_server_admin_adds_edits_and_removes_a_domain_admin(app, admin, world):
    add_domain(app, "charlie.example")
    add_account(app, "cid@charlie.example")
    refused = admin.post("/admin/admins/new/", {"username": "erin", "password": "erin's long password", "domains": "alpha.example nowhere.example"})
    assert refused.status_code == 422 and "No such domain: nowhere.example" in refused.text
    added = admin.post(
        "/admin/admins/new/",
        {"username": "erin", "password": "erin's long password", "domains": "alpha.example, charlie.example"},
    )
    assert added.status_code == 302
    listing = admin.get("/admin/admins/").text
    assert "erin" in listing and "alpha.example, charlie.example" in listing
    assert "erin" in admin.get("/admin/domains/").text  # who manages each domain
    again = admin.post("/admin/admins/new/", {"username": "erin", "password": "another long password", "domains": "alpha.example"})
    assert again.status_code == 422 and "already exists" in again.text

    erin = AdminClient(app.test_client())
    assert erin.login("erin", "erin's long password").status_code == 302
    page = erin.get(LIST).text
    assert "ann@alpha.example" in page and "cid@charlie.example" in page and "bob.secret" not in page
    assert erin.get("/admin/admins/").status_code == 403

    with app.app_context():
        from opmail.auth import find_admin

        erin_id = find_admin("erin").id
    saved = admin.post(f"/admin/admins/edit/?id={erin_id}", {"domains": "charlie.example"})
    assert saved.status_code == 302
    # Its session ended with the change; logged in again, alpha.example is gone.
    assert erin.get(LIST).status_code == 302
    assert erin.login("erin", "erin's long password").status_code == 302
    page = erin.get(LIST).text
    assert "cid@charlie.example" in page and "ann@alpha.example" not in page

    assert admin.post(f"/admin/admins/delete/?id={erin_id}").status_code == 302
    assert 'data-admin="erin"' not in admin.get("/admin/admins/").text
    assert erin.get(LIST).status_code == 302
    assert erin.login("erin", "erin's long password").status_code != 302


def test_require_2fa_sends_the_domain_admin_to_its_setup_first(app, world):
    with app.app_context():
        set_admin_password("dora", DORA_PASSWORD, ["alpha.example"], require_2fa=True)
    client = AdminClient(app.test_client())
    assert client.login("dora", DORA_PASSWORD).status_code == 302
    response = client.get(LIST)
    assert response.status_code == 302 and response.location.endswith("/admin/two-factor/")


def test_a_domain_admin_is_locked_out_like_any_admin(app, world):
    client = AdminClient(app.test_client())
    for _ in range(6):
        client.login("dora", "a wrong password")
    refused = client.login("dora", DORA_PASSWORD)
    assert refused.status_code != 302 and "Too many failed attempts" in refused.text
