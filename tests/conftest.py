"""Shared fixtures: an app per test on SQLite and (when configured) MariaDB, clients, a logged-in admin.

Storage tests take the ``app`` fixture, which is parametrised over ``sqlite`` and ``mysql``. MariaDB
runs need ``OPMAIL_TEST_MYSQL_URL`` (a server URL; each run creates and drops its own database).
With ``CI=true`` a missing service fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from opmail import create_app
from opmail.auth import set_admin_password
from opmail.db import create_schema, get_engine, get_session
from opmail.models import Base
from tests.helpers import add_account, add_domain

# Browser fixtures (live_server, browser, page, logged_in_page) and the private mail server
# (mail_server) live in their own modules.
pytest_plugins = ["tests.browser", "tests.mailserver"]

IN_CI = os.environ.get("CI") == "true"
ADMIN_PASSWORD = "correct horse battery"
_CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"|name="csrf_token"[^>]*value="([^"]+)"')


def require(available: bool, why: str) -> None:
    """Skip when a service is missing, except in CI, where a missing service is a failure."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"CI=true and {why}")
    pytest.skip(why)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep each test on the databases it means something on, deselecting (not skipping) the rest.

    A test that uses ``browser`` is marked ``browser`` and runs on SQLite only (tests/browser.py);
    a ``mariadb_only`` test (a race SQLite cannot have: it serialises writers) on MariaDB only.
    """
    kept, deselected = [], []
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)
        callspec = getattr(item, "callspec", None)
        database = callspec.params.get("db_url") if callspec is not None else None
        wrong_database = (database == "mysql" and item.get_closest_marker("browser")) or (
            database == "sqlite" and item.get_closest_marker("mariadb_only")
        )
        (deselected if wrong_database else kept).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


@contextmanager
def mysql_database(server_url: str, name: str) -> Iterator[str]:
    """A new, empty MariaDB database ``name`` on the server of ``server_url``, dropped afterwards."""
    url = sa.make_url(server_url)
    admin_engine = sa.create_engine(url.set(database=""))
    with admin_engine.begin() as connection:
        connection.exec_driver_sql(
            f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
    try:
        yield url.set(database=name, query={"charset": "utf8mb4"}).render_as_string(hide_password=False)
    finally:
        with admin_engine.begin() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        admin_engine.dispose()


@pytest.fixture(scope="session")
def mysql_url():
    """A fresh MariaDB database for this test run, dropped at the end (None when not configured)."""
    server_url = os.environ.get("OPMAIL_TEST_MYSQL_URL")
    if not server_url:
        yield None
        return
    with mysql_database(server_url, f"opmail_test_{uuid.uuid4().hex[:10]}") as url:
        yield url


@pytest.fixture(params=["sqlite", "mysql"])
def db_url(request, tmp_path, mysql_url):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'opmail.db'}"
    require(mysql_url is not None, "OPMAIL_TEST_MYSQL_URL is not set: no MariaDB to test against")
    return mysql_url


def make_app(db_url: str, tmp_path: Path, **overrides):
    config = {
        "TESTING": True,
        "DATABASE_URL": db_url,
        "SECRET_KEY": "test-secret-key",
        "OPMAIL_BCRYPT_ROUNDS": 4,
        "MAILDIR_ROOT": str(tmp_path / "mail"),
        "MAIL_SYNC_SECRET": "",
        **overrides,
    }
    return create_app(config, instance_path=str(tmp_path / "instance"))


@pytest.fixture
def app_overrides():
    """Config a test module wants on top of the defaults (override this fixture)."""
    return {}


@pytest.fixture
def app(db_url, tmp_path, app_overrides):
    app = make_app(db_url, tmp_path, **app_overrides)
    with app.app_context():
        create_schema()
    yield app
    with app.app_context():
        get_session().rollback()
        get_session().close()
        if db_url.startswith("mysql"):
            # The MariaDB database lives for the whole run: empty it for the next test.
            with get_engine().begin() as connection:
                connection.exec_driver_sql("SET FOREIGN_KEY_CHECKS=0")
                for table in reversed(Base.metadata.sorted_tables):
                    connection.execute(table.delete())
                connection.exec_driver_sql("SET FOREIGN_KEY_CHECKS=1")
        get_engine().dispose()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def csrf_from(html: str) -> str:
    match = _CSRF_RE.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1) or match.group(2)


class AdminClient:
    """A test client that logs in like a browser and sends the CSRF token like the pages do."""

    def __init__(self, client):
        self.client = client
        self.token = None

    def login(self, username="admin", password=ADMIN_PASSWORD):
        page = self.client.get("/admin/login")
        response = self.client.post(
            "/admin/login",
            data={"username": username, "password": password, "csrf_token": csrf_from(page.text)},
        )
        self.refresh_token()
        return response

    def refresh_token(self):
        self.token = csrf_from(self.client.get("/admin/login").text)

    def get(self, url, htmx=False, **kwargs):
        headers = kwargs.pop("headers", {})
        if htmx:
            headers["HX-Request"] = "true"
        return self.client.get(url, headers=headers, **kwargs)

    def post(self, url, data=None, htmx=False, **kwargs):
        """POST like the page would: the token in the form, or in the header for htmx."""
        data = dict(data or {})
        headers = kwargs.pop("headers", {})
        if htmx:
            headers.update({"HX-Request": "true", "X-CSRFToken": self.token})
        else:
            data.setdefault("csrf_token", self.token)
        return self.client.post(url, data=data, headers=headers, **kwargs)


def add_admin(app) -> str:
    """The admin every test logs in as (``admin`` / ADMIN_PASSWORD); returns its name."""
    with app.app_context():
        set_admin_password("admin", ADMIN_PASSWORD)
    return "admin"


def log_in(client) -> AdminClient:
    """``client`` logged in as that admin, its CSRF token ready: a session of its own."""
    admin_client = AdminClient(client)
    response = admin_client.login()
    assert response.status_code == 302, response.text
    return admin_client


@pytest.fixture
def admin_user(app):
    return add_admin(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def admin(client, admin_user):
    """A logged-in admin."""
    return log_in(client)


@pytest.fixture
def jane(app) -> int:
    """example.com with jane@example.com's account (its id): the account most tests act on."""
    add_domain(app, "example.com")
    return add_account(app, "jane@example.com")
