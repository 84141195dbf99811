"""opmail inside an existing Flask site (``examples/host_site``): the host's database, Flask-Admin,
Flask-Login and global CSRFProtect, with opmail's tables on the ``opmail`` bind only.

The bind points at the ``db_url`` test database (SQLite or MariaDB); the host's own database is a
separate SQLite file.
"""

from __future__ import annotations

import re
import shutil
from contextlib import nullcontext
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_admin import Admin
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

from examples.host_site import create_app as create_host_app
from examples.host_site.models import Site, User, add_user
from examples.host_site.models import db as host_db
from opmail import ConfigError, OpMail
from opmail.db import create_schema, get_engine
from opmail.models import AdminEvent, Base, MailAccount, SyncEvent
from tests.conftest import AdminClient, add_admin, csrf_from, log_in
from tests.helpers import add_account, add_domain, round_trips, rows, snapshot
from tests.test_csrf import post_endpoints

HOST_DIR = Path(__file__).resolve().parent.parent / "examples" / "host_site"
STAFF, GUEST, PASSWORD = "staff@example.org", "guest@example.org", "host-site-pass"
SECRET = "s" * 32


def empty_mail_tables(app: Flask) -> None:
    """The MariaDB test database lives for the whole run: leave it empty for the next test."""
    with app.app_context():
        engine = get_engine()
        if engine.dialect.name == "mysql":
            with engine.begin() as connection:
                connection.exec_driver_sql("SET FOREIGN_KEY_CHECKS=0")
                for table in reversed(Base.metadata.sorted_tables):
                    connection.execute(table.delete())
                connection.exec_driver_sql("SET FOREIGN_KEY_CHECKS=1")
        engine.dispose()


def make_host(db_url: str, folder: Path, **config) -> Flask:
    """The example site with its database in ``folder`` and opmail's bind at ``db_url``."""
    folder.mkdir(exist_ok=True)
    app = create_host_app(
        {
            "TESTING": True,
            "SECRET_KEY": "host-secret",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'host.db'}",
            "SQLALCHEMY_BINDS": {"opmail": db_url},
            "OPMAIL_BCRYPT_ROUNDS": 4,
            "MAIL_SYNC_SECRET": SECRET,
            "MAILDIR_ROOT": str(folder / "mail"),
            **config,
        },
        instance_path=str(folder / "instance"),
    )
    with app.app_context():
        host_db.create_all()
        create_schema()
        add_user(STAFF, PASSWORD, staff=True)
        add_user(GUEST, PASSWORD)
        host_db.session.add(Site(domain="shop.example.org", title="The shop"))
        host_db.session.commit()
    return app


@pytest.fixture
def host(db_url, tmp_path):
    app = make_host(db_url, tmp_path / "host")
    yield app
    empty_mail_tables(app)


class HostClient(AdminClient):
    """Logs in through the host's own login page; posts with the token like opmail's pages."""

    def login(self, email=STAFF, password=PASSWORD):
        page = self.client.get("/login")
        response = self.client.post(
            "/login", data={"email": email, "password": password, "csrf_token": csrf_from(page.text)}
        )
        self.refresh_token()
        return response

    def refresh_token(self):
        self.token = csrf_from(self.client.get("/login").text)


@pytest.fixture
def staff(host):
    client = HostClient(host.test_client())
    assert client.login().status_code == 302
    return client


@pytest.mark.parametrize(
    "url, shows",
    [
        ("/admin/", "Host site"),  # the host's Admin home
        ("/admin/host_sites/", "shop.example.org"),  # the host's own view
        ("/domain/shop.example.org", "The shop"),  # the host's blueprint called `domain`
        ("/admin/mail/", "Recent Syncs"),  # opmail's dashboard
        ("/admin/mail/accounts/", "jane@example.com"),
        ("/admin/mail/domains/", "example.com"),
        ("/admin/mail/sync-log/", "Sync Log"),
        ("/admin/mail/audit/", "Audit Log"),
    ],
)
def test_host_and_opmail_pages_both_work(host, staff, url, shows):
    add_domain(host)
    add_account(host, "jane@example.com")
    response = staff.get(url)
    assert response.status_code == 200, url
    assert shows in response.text


def test_opmail_pages_keep_the_host_theme_and_bring_their_scripts(host, staff):
    page = staff.get("/admin/mail/accounts/").text
    # The host's brand, menu and login box (its theme's base_template) ...
    assert '<a class="navbar-brand" href="/admin">Host site</a>' in page
    assert 'href="/admin/host_sites/"' in page and ">Mail<" in page.replace("\n", "").replace(" ", "")
    assert 'id="host-login-box"' in page and STAFF in page
    # ... and what opmail's pages need in any Admin: htmx, opmail.js, the token for htmx, toasts.
    for needed in (
        "/static/opmail/vendor/htmx-2.0.11.min.js",
        "/static/opmail/opmail.js",
        'name="csrf-token"',
        'id="opmail-toasts"',
    ):
        assert needed in page
    # With the host's login, opmail shows no login page and no logout button of its own.
    assert "opmail_auth" not in host.blueprints
    assert staff.get("/admin/mail/login").status_code == 404


@pytest.mark.parametrize(
    "who, htmx, status, location",
    [
        (None, False, 302, "/login?next=%2Fadmin%2Fmail%2Faccounts%2F%3Fq%3Djane"),
        (None, True, 204, None),  # htmx: HX-Redirect to the same login page
        (GUEST, False, 403, None),  # logged in, but the host's access() says no
        (STAFF, False, 200, None),
    ],
)
def test_host_login_gates_opmail(host, who, htmx, status, location):
    client = HostClient(host.test_client())
    if who:
        client.login(who)
    response = client.get("/admin/mail/accounts/?q=jane", htmx=htmx)
    assert response.status_code == status
    if location:
        assert response.location == location
    if htmx:
        assert response.headers["HX-Redirect"] == "/login?next=%2Fadmin%2Fmail%2Faccounts%2F%3Fq%3Djane"


def test_a_user_access_refuses_cannot_post_either(host):
    add_domain(host)
    account = add_account(host, "jane@example.com")
    guest = HostClient(host.test_client())
    guest.login(GUEST)
    before = snapshot(host)
    response = guest.post("/admin/mail/accounts/action/", {"action": "suspend", "rowid": str(account)})
    assert response.status_code == 403
    assert snapshot(host) == before


def test_webhook_works_with_the_host_csrf_on(host):
    client = host.test_client()
    # The host's CSRFProtect is on: its own forms refuse a POST without a token ...
    assert client.post("/login", data={"email": STAFF, "password": PASSWORD}).status_code == 400
    # ... while the agent's call needs only the shared secret.
    response = client.post(
        "/api/sync/account",
        json={"action": "create", "email": "new@example.net", "password": "s3cret pass"},
        headers={"X-Sync-Secret": SECRET},
    )
    assert response.status_code == 200, response.text
    assert rows(host, sa.select(MailAccount.email)) == [("new@example.net",)]


def test_webhook_on_a_host_engine_without_multi_statements(host, db_url):
    """A host's own bind (a bare URL here) may lack opmail's client flags: the webhook then sends
    its statements one by one, and writes and logs the same."""
    client = host.test_client()

    def call(body):
        return client.post("/api/sync/account", json=body, headers={"X-Sync-Secret": SECRET})

    assert call({"action": "create", "email": "first@example.net", "password": "s3cret pass"}).status_code == 200
    with round_trips(host) if db_url.startswith("mysql") else nullcontext([]) as sent:
        assert call({"action": "create", "email": "new@example.net", "password": "s3cret pass"}).status_code == 200
        assert call({"action": "password", "email": "new@example.net", "password": "an0ther pass"}).status_code == 200
        assert call({"action": "delete", "email": "gone@example.net"}).status_code == 200
    assert all(len(statements) == 1 for statements in sent)
    assert rows(host, sa.select(SyncEvent.email, SyncEvent.outcome).order_by(SyncEvent.id)) == [
        ("first@example.net", "created"),
        ("new@example.net", "created"),
        ("new@example.net", "password"),
        ("gone@example.net", "noop"),
    ]
    assert rows(host, sa.select(MailAccount.email).order_by(MailAccount.email)) == [
        ("first@example.net",),
        ("new@example.net",),
    ]


def test_opmail_tables_live_in_the_bind_database_only(host):
    with host.app_context():
        host_tables = set(sa.inspect(host_db.engine).get_table_names())
        mail_tables = set(sa.inspect(get_engine()).get_table_names())
    assert host_tables == {"users", "sites"}
    assert set(Base.metadata.tables) <= mail_tables
    assert not mail_tables & {"users", "sites"}


def test_search_and_bulk_suspend_inside_the_host_admin(host, staff):
    add_domain(host)
    jane = add_account(host, "jane@example.com")
    add_account(host, "bob@example.com")

    found = staff.get("/admin/mail/accounts/?q=jane", htmx=True)
    assert found.status_code == 200
    assert "jane@example.com" in found.text and "bob@example.com" not in found.text
    assert found.headers["HX-Push-Url"] == "/admin/mail/accounts/?q=jane"

    response = staff.post(
        "/admin/mail/accounts/action/",
        {"action": "suspend", "rowid": str(jane), "url": "/admin/mail/accounts/?q=jane"},
        htmx=True,
    )
    assert response.status_code == 200
    assert "1 account suspended." in response.headers["HX-Trigger"]
    assert rows(host, sa.select(MailAccount.email, MailAccount.is_active).order_by(MailAccount.email)) == [
        ("bob@example.com", True),
        ("jane@example.com", False),
    ]


@pytest.mark.parametrize("prints_itself", [True, False])
def test_the_audit_log_names_the_host_user(host, staff, monkeypatch, prints_itself):
    if not prints_itself:
        # A host user class without __str__: the log names it by Flask-Login's get_id().
        monkeypatch.delattr(User, "__str__")
    actor = STAFF if prints_itself else "1"
    add_domain(host)
    assert staff.post("/admin/mail/domains/new/", {"domain": "new.example"}).status_code == 302
    assert rows(host, sa.select(AdminEvent.actor, AdminEvent.action, AdminEvent.targets)) == [
        (actor, "domain.create", "new.example")
    ]
    card = staff.get("/admin/mail/").text.partition('id="admin-actions"')[2]
    assert f'href="/admin/mail/audit/?flt0_admin_equals={actor}">{actor}</a>' in card


def test_delete_dialog_checks_the_host_users_own_password(host, staff):
    add_domain(host)
    jane = add_account(host, "jane@example.com")
    wrong = staff.post(f"/admin/mail/accounts/delete/?id={jane}", {"admin_password": "not it"})
    assert wrong.status_code == 422 and "Wrong admin password: nothing was deleted." in wrong.text
    assert rows(host, sa.select(MailAccount.email)) == [("jane@example.com",)]
    posted = staff.post(f"/admin/mail/accounts/delete/?id={jane}", {"admin_password": PASSWORD})
    assert posted.status_code == 303 and posted.location == "/admin/mail/accounts/deleted/"
    done = staff.client.get(posted.location)
    assert done.status_code == 200 and "Account jane@example.com deleted." in done.text
    assert rows(host, sa.select(MailAccount.email)) == []


def test_a_template_in_the_host_folder_overrides_opmails(host, tmp_path):
    # The host's templates folder, with one more file at opmail's name for the dashboard (set
    # before the first page: Flask builds the app's template loader once).
    folder = tmp_path / "templates"
    shutil.copytree(HOST_DIR / "templates", folder)
    (folder / "opmail" / "admin").mkdir(parents=True)
    (folder / "opmail" / "admin" / "dashboard.html").write_text(
        '{% extends "admin/master.html" %}{% block body %}<p id="host-mail-home">Our mail</p>{% endblock %}'
    )
    host.template_folder = str(folder)
    staff = HostClient(host.test_client())
    staff.login()
    page = staff.get("/admin/mail/").text
    assert '<p id="host-mail-home">Our mail</p>' in page
    assert "Recent Syncs" not in page
    assert 'id="host-login-box"' in page  # still inside the host's theme


def test_admin_ips_guard_opmails_prefix_only(db_url, tmp_path):
    """In a host's Admin, MAIL_ADMIN_IPS keeps other addresses out of opmail's area, not the host's."""
    app = make_host(db_url, tmp_path / "guarded", MAIL_ADMIN_IPS="192.0.2.0/24")
    try:
        inside, outside = HostClient(app.test_client()), HostClient(app.test_client())
        inside.client.environ_base["REMOTE_ADDR"] = "192.0.2.7"
        outside.client.environ_base["REMOTE_ADDR"] = "198.51.100.7"
        assert inside.login().status_code == 302 and outside.login().status_code == 302
        assert inside.get("/admin/mail/accounts/").status_code == 200
        refused = outside.get("/admin/mail/accounts/")
        assert refused.status_code == 403 and "cannot be opened from your address" in refused.text
        assert outside.get("/admin/host_sites/").status_code == 200  # the host's own admin view
        assert outside.get("/domain/shop.example.org").status_code == 200
    finally:
        empty_mail_tables(app)


def test_two_host_apps_in_one_process_share_nothing(db_url, tmp_path):
    first = make_host(db_url, tmp_path / "first")
    second = make_host(
        f"sqlite:///{tmp_path / 'second-mail.db'}", tmp_path / "second", OPMAIL_SYNC_URL="/hooks/mail"
    )
    try:
        add_domain(first)
        add_account(first, "jane@example.com")
        lists = {}
        for app in (first, second):
            client = HostClient(app.test_client())
            client.login()
            lists[app] = client.get("/admin/mail/accounts/").text
        assert "jane@example.com" in lists[first] and "jane@example.com" not in lists[second]
        assert first.extensions["opmail"] is not second.extensions["opmail"]
        hooks = {
            app: {rule.rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith("opmail_sync.")}
            for app in (first, second)
        }
        assert hooks == {first: {"/api/sync/account"}, second: {"/hooks/mail"}}
    finally:
        empty_mail_tables(first)
        empty_mail_tables(second)


@pytest.fixture
def app(host):
    """The browser fixtures serve ``app``: here, the host site."""
    return host


def test_in_a_browser_search_and_bulk_suspend_work_inside_the_host_admin(host, page):
    from playwright.sync_api import expect

    add_domain(host)
    for name in ("jane", "jack", "bob"):
        add_account(host, f"{name}@example.com")
    page.goto("/admin/mail/accounts/")  # the host's login first, then back here
    page.get_by_label("Email").fill(STAFF)
    page.get_by_label("Password").fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("link", name="Sites")).to_be_visible()  # the host's menu stays
    page.evaluate("window.__marker = 1")

    page.get_by_label("Search by email address or domain").press_sequentially("ja")
    rows_shown = page.locator("#opmail-accounts tbody tr[data-email]")
    expect(rows_shown).to_have_count(2)
    expect(page).to_have_url(re.compile(r"/admin/mail/accounts/\?q=ja$"))
    page.get_by_label("Select jane@example.com", exact=True).check()
    page.get_by_label("Bulk Actions").select_option(label="Suspend")
    page.get_by_role("button", name="Apply to selected").click()

    expect(page.locator("#opmail-toasts").get_by_text("1 account suspended.")).to_be_visible()
    expect(rows_shown).to_have_count(2)  # the search is kept
    assert page.evaluate("window.__marker") == 1, "htmx did not work: the page reloaded"
    assert rows(host, sa.select(MailAccount.email).where(MailAccount.is_active.is_(False))) == [
        ("jane@example.com",)
    ]


def test_second_init_app_on_the_host_is_refused(host):
    with pytest.raises(RuntimeError, match="already set up on this app"):
        OpMail(host, db=host_db, admin=host.extensions["admin"][0])


# --- a bare host: no Flask-Admin, no login, CSRFProtect late or missing ------------------------------


def bare_host(db_url: str, *, csrf: str, **opmail) -> Flask:
    """A minimal host: its own Flask-SQLAlchemy, opmail's Admin and login, CSRFProtect as told."""
    app = Flask(__name__)
    app.config.update(
        TESTING=True,
        SECRET_KEY="bare-secret",
        SQLALCHEMY_BINDS={"opmail": db_url},
        OPMAIL_BCRYPT_ROUNDS=4,
        MAIL_SYNC_SECRET=SECRET,
    )
    db = SQLAlchemy(app)
    if csrf == "before":
        CSRFProtect(app)
    OpMail(app, db=db, **opmail)
    if csrf == "after":
        CSRFProtect(app)

    @app.post("/host-form")
    def host_form():
        return "host form accepted"

    with app.app_context():
        create_schema()
    return app


@pytest.fixture
def bare_hosts():
    built = []
    yield lambda *args, **kwargs: built.append(bare_host(*args, **kwargs)) or built[-1]
    for app in built:
        empty_mail_tables(app)


@pytest.mark.parametrize(
    "csrf, opmail, url",
    [
        ("before", {}, "/api/sync/account"),
        ("after", {}, "/api/sync/account"),  # CSRFProtect set up after OpMail
        ("after", {"sync_url": "/hooks/panel"}, "/hooks/panel"),
        ("none", {}, "/api/sync/account"),
    ],
)
def test_webhook_is_csrf_exempt_whatever_the_order(db_url, bare_hosts, csrf, opmail, url):
    app = bare_hosts(db_url, csrf=csrf, **opmail)
    client = app.test_client()
    host_form = client.post("/host-form")
    assert host_form.status_code == (200 if csrf == "none" else 400)
    response = client.post(
        url,
        json={"action": "create", "email": "jane@example.com", "password": "s3cret pass"},
        headers={"X-Sync-Secret": SECRET},
    )
    assert response.status_code == 200, response.text
    if url != "/api/sync/account":
        assert client.post("/api/sync/account", json={}).status_code == 404


def test_opmail_checks_csrf_itself_on_a_host_without_csrfprotect(db_url, bare_hosts):
    app = bare_hosts(db_url, csrf="none")
    assert "csrf" not in app.extensions
    add_admin(app)
    admin = log_in(app.test_client())
    add_domain(app)
    jane = add_account(app, "jane@example.com")
    before = snapshot(app)
    # Every opmail POST, enumerated: a new view that skips opmail's own check fails here, where no
    # CSRFProtect stands behind it (the standalone enumeration in test_csrf has one).
    urls = [url for url in post_endpoints(app) if url != "/host-form"]
    assert {"/admin/accounts/action/", "/admin/domains/new/", "/admin/logout"} <= set(urls)
    form = {"action": "suspend", "rowid": str(jane), "domain": "new.example", "admin_password": "x"}
    for endpoint in urls:
        url = f"{endpoint}?id={jane}" if endpoint.startswith("/admin/accounts/") else endpoint
        response = admin.client.post(url, data=form, headers={"HX-Request": "true"})
        assert response.status_code == 400, url
    assert snapshot(app) == before
    # The same POST with the page's token goes through.
    assert admin.post("/admin/accounts/action/", {"action": "suspend", "rowid": str(jane)}).status_code == 302
    assert rows(app, sa.select(MailAccount.is_active)) == [(False,)]


def test_missing_bind_is_refused_naming_the_key():
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
    db = SQLAlchemy(app)
    with pytest.raises(ConfigError, match=r'SQLALCHEMY_BINDS\["opmail"\] is not set'):
        OpMail(app, db=db)


def test_an_admin_of_another_app_is_refused():
    other = Flask(__name__)
    app = Flask(__name__)
    app.config["SQLALCHEMY_BINDS"] = {"opmail": "sqlite://"}
    with pytest.raises(ConfigError, match="belongs to another app"):
        OpMail(app, db=SQLAlchemy(app), admin=Admin(other))


def test_a_host_access_naming_domains_makes_a_domain_admin(db_url, bare_hosts):
    """``access`` answering with names: that user manages those domains only; naming none of ours
    is no access at all."""
    names = {"value": ["alpha.example"]}
    app = bare_hosts(db_url, csrf="before", access=lambda: names["value"])
    add_domain(app, "alpha.example")
    add_domain(app, "bravo.example")
    add_account(app, "ann@alpha.example")
    bravo = add_account(app, "bob@bravo.example")
    client = app.test_client()
    page = client.get("/admin/accounts/")
    assert page.status_code == 200
    assert "ann@alpha.example" in page.text and "bob@bravo.example" not in page.text
    assert client.get(f"/admin/accounts/edit/?id={bravo}").status_code == 404
    assert client.get("/admin/sync-log/").status_code == 403
    names["value"] = ["nowhere.example"]
    assert client.get("/admin/accounts/").status_code == 403


def test_the_example_sites_customer_manages_only_its_mail_domains(host):
    """examples/host_site: a customer (not staff) whose account names mail domains uses opmail's
    pages as the admin of those, and the host's own admin stays closed to it."""
    add_domain(host, "customer.example")
    add_domain(host, "other.example")
    add_account(host, "cat@customer.example")
    other = add_account(host, "oscar@other.example")
    with host.app_context():
        add_user("owner@customer.example", PASSWORD, mail_domains="customer.example")
    customer = HostClient(host.test_client())
    assert customer.login("owner@customer.example").status_code == 302
    page = customer.get("/admin/mail/accounts/")
    assert page.status_code == 200
    assert "cat@customer.example" in page.text and "oscar@other.example" not in page.text
    assert customer.get(f"/admin/mail/accounts/edit/?id={other}").status_code == 404
    assert customer.get("/admin/mail/sync-log/").status_code == 403
    # The guest, a user with no mail domains, gets nothing.
    guest = HostClient(host.test_client())
    guest.login(GUEST)
    assert guest.get("/admin/mail/accounts/").status_code == 403
