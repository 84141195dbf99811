"""The mail database going away mid-request: a clear 503 (page, toast or JSON), never a 500 trace,
nothing half-written, and the next request after it comes back works.

The cheap tests make the driver fail (SQLite and the shared MariaDB); the restart test stops and
starts a private MariaDB server of its own, so the shared one the other tests use is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from opmail.db import create_schema, get_engine
from tests.conftest import ADMIN_PASSWORD, add_admin, csrf_from, log_in, make_app, require
from tests.helpers import SYNC_SECRET, add_account, add_domain, snapshot, sync_call

AWAY = "The mail database is not answering. Try again in a moment."
CREATE_JANE = {"action": "create", "email": "jane@example.com", "password": "from the panel"}
NEW_ACCOUNT = {"email": "ann@example.com", "password": "a new password", "quota_mb": "0"}


@pytest.fixture
def app_overrides():
    return {"MAIL_SYNC_SECRET": SYNC_SECRET}


@contextmanager
def database_hook(app, hook: Callable[..., None]) -> Iterator[None]:
    """Run ``hook`` before every statement the app's engine sends (``before_cursor_execute``)."""
    with app.app_context():
        engine = get_engine()
    event.listen(engine, "before_cursor_execute", hook)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", hook)


@contextmanager
def database_fails(app, when: Callable[[str], bool] = lambda statement: True) -> Iterator[None]:
    """Every statement ``when`` picks fails in the driver, as on a server that went away."""
    with app.app_context():
        dbapi_error = get_engine().dialect.loaded_dbapi.OperationalError

    def fail(connection, cursor, statement, *args) -> None:
        if when(statement):
            raise dbapi_error(2013, "Lost connection to server during query")

    with database_hook(app, fail):
        yield


def assert_away_page(response) -> None:
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "10"
    assert response.mimetype == "text/html"
    assert AWAY in response.text and "Traceback" not in response.text


def assert_away_json(response) -> None:
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "10"
    assert response.json == {"error": AWAY}


# --- the driver fails ------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/admin/", "/admin/accounts/", "/admin/domains/", "/admin/sync-log/"])
def test_admin_pages_answer_503_and_work_again_after(app, admin, url):
    with database_fails(app):
        assert_away_page(admin.get(url))
    assert admin.get(url).status_code == 200


def test_htmx_requests_get_a_toast(app, admin):
    with database_fails(app):
        response = admin.get("/admin/accounts/?q=jane", htmx=True)
    assert response.status_code == 503
    assert json.loads(response.headers["HX-Trigger"]) == {"opmail:toast": {"message": AWAY, "category": "error"}}


def test_login_answers_503(app, client, admin_user):
    form = client.get("/admin/login")  # the form itself needs no database
    credentials = {"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": csrf_from(form.text)}
    with database_fails(app):
        assert_away_page(client.post("/admin/login", data=credentials))
    assert client.post("/admin/login", data=credentials).status_code == 302


def test_webhook_answers_503_json_and_writes_nothing(app, client):
    before = snapshot(app)
    with database_fails(app, when=lambda statement: statement.startswith("INSERT INTO sync_events")):
        assert_away_json(sync_call(client, CREATE_JANE))
    assert snapshot(app) == before  # neither the domain nor the account the call had added
    assert sync_call(client, CREATE_JANE).json == {"status": "ok"}


def test_a_delete_that_fails_halfway_writes_nothing(app, admin):
    add_domain(app)
    jane = add_account(app, "jane@example.com")
    alias = {"alias_email": "team@example.com", "destinations": "jane@example.com"}
    assert admin.post("/admin/aliases/new/", alias).status_code == 302
    before = snapshot(app)
    # The cascade has removed the aliases and the rest when the account's own row fails.
    with database_fails(app, when=lambda statement: statement.startswith("DELETE FROM mail_accounts")):
        assert_away_page(admin.post(f"/admin/accounts/delete/?id={jane}", {"admin_password": ADMIN_PASSWORD}))
    assert snapshot(app) == before


def test_a_host_route_keeps_its_own_error_handling(app):
    """Embedded, opmail's 503 covers opmail's pages only: a host view's error stays the host's."""

    def host_view():
        with app.app_context():
            return str(get_engine().connect().execute(sa.text("SELECT 1")).scalar())

    app.add_url_rule("/host-page", view_func=host_view)
    client = app.test_client()
    assert client.get("/host-page").text == "1"
    with database_fails(app), pytest.raises(OperationalError):  # TESTING propagates it: no handler
        client.get("/host-page")


# --- a real MariaDB server stops and starts again --------------------------------------------------


def _binary(name: str) -> str | None:
    # Debian installs mariadbd in sbin, which a user's PATH may lack.
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"]))


@dataclass
class PrivateMariaDB:
    """A MariaDB server of this test's own: its data under ``root``, TCP on a free port."""

    root: Path
    port: int
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/opmail?charset=utf8mb4"

    def start(self) -> None:
        """Start on the same data directory and port, and wait until it answers."""
        user = ["--user=root"] if os.geteuid() == 0 else []  # as root mariadbd wants it said
        self.process = subprocess.Popen(
            [
                _binary("mariadbd"), "--no-defaults", *user,
                f"--datadir={self.root / 'data'}", f"--socket={self.root / 'mysqld.sock'}",
                f"--pid-file={self.root / 'mysqld.pid'}", f"--log-error={self.root / 'error.log'}",
                f"--port={self.port}", "--bind-address=127.0.0.1",
                # Only this test connects: no accounts to set up, no binary log, a small buffer pool.
                "--skip-grant-tables", "--skip-log-bin", "--innodb-buffer-pool-size=32M",
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.root / "error.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"the private mariadbd did not start:\n{log}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Shut the server down (SIGTERM: it closes every connection) and wait until it is gone."""
        self.process.terminate()
        self.process.wait(timeout=30)

    def hang(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open and the port accepts, nothing answers."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def answers(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
        except OSError:
            return False
        return True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def private_mariadb(tmp_path) -> Iterator[PrivateMariaDB]:
    """A fresh MariaDB server with an empty ``opmail`` database (needs Debian's mariadb-server)."""
    require(
        _binary("mariadbd") is not None and _binary("mariadb-install-db") is not None,
        "mariadb-server is not installed (mariadbd, mariadb-install-db; see .ci/run)",
    )
    server = PrivateMariaDB(tmp_path / "mariadb", _free_port())
    server.root.mkdir()
    user = ["--user=root"] if os.geteuid() == 0 else []
    subprocess.run(
        [
            _binary("mariadb-install-db"), "--no-defaults", *user, f"--datadir={server.root / 'data'}",
            "--auth-root-authentication-method=normal", "--skip-test-db",
        ],
        check=True, capture_output=True, timeout=60,
    )
    server.start()
    try:
        engine = sa.create_engine(f"mysql+pymysql://root@127.0.0.1:{server.port}/")
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE DATABASE opmail CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        engine.dispose()
        yield server
    finally:
        if server.process.poll() is None:
            server.stop()


def test_mariadb_restarted_mid_session(private_mariadb, tmp_path):
    app = make_app(private_mariadb.url, tmp_path, MAIL_SYNC_SECRET=SYNC_SECRET)
    with app.app_context():
        create_schema()
        assert not get_engine().pool._pre_ping  # the recovery below is not a ping per request
    add_admin(app)
    admin = log_in(app.test_client())
    add_domain(app)
    assert admin.get("/admin/accounts/").status_code == 200  # the pool now holds a live connection

    private_mariadb.stop()
    assert_away_page(admin.get("/admin/accounts/"))
    assert admin.get("/admin/accounts/", htmx=True).status_code == 503
    assert_away_json(sync_call(admin.client, CREATE_JANE))

    private_mariadb.start()
    page = admin.get("/admin/accounts/")  # the same session: the admin is still logged in
    assert page.status_code == 200 and "Accounts" in page.text
    assert sync_call(admin.client, CREATE_JANE).json == {"status": "ok"}
    assert "jane@example.com" in admin.get("/admin/accounts/").text

    # Restarted while nobody asked: the pooled connection is dead without anyone having seen it
    # fail. The checkout finds its socket closed and reconnects (no pre-ping round trip), so the
    # first request does not fail either, a read or a write.
    private_mariadb.stop()
    private_mariadb.start()
    assert admin.get("/admin/accounts/").status_code == 200
    assert sync_call(admin.client, {"action": "delete", "email": "jane@example.com"}).status_code == 200
    with app.app_context():
        get_engine().dispose()


# --- a real MariaDB server hangs (SIGSTOP) and comes back (SIGCONT) ---------------------------------

TIMEOUT = 2  # DATABASE_TIMEOUT and DATABASE_CONNECT_TIMEOUT for these tests, in seconds
# A statement, then (a write's one retry) a fresh connection's greeting: at most two timeouts,
# and a little to spare.
ANSWER_WITHIN = 2 * TIMEOUT + 2


def within(seconds: float, request: Callable[[], object]):
    """``request()``'s result, which must come within ``seconds``; else the test fails (and the
    call, still blocked on the hung server, finishes in its thread once the server resumes)."""
    pool = ThreadPoolExecutor(1)
    try:
        return pool.submit(request).result(timeout=seconds)
    except FutureTimeout:
        pytest.fail(f"no answer within {seconds} s from a hung database")
    finally:
        pool.shutdown(wait=False)


@pytest.fixture
def hung_setup(private_mariadb, tmp_path):
    """An app on the private server with a domain, jane and a logged-in admin, pool warmed up."""
    app = make_app(
        private_mariadb.url, tmp_path, MAIL_SYNC_SECRET=SYNC_SECRET,
        DATABASE_TIMEOUT=TIMEOUT, DATABASE_CONNECT_TIMEOUT=TIMEOUT,
    )
    with app.app_context():
        create_schema()
    add_admin(app)
    admin = log_in(app.test_client())
    domain = add_domain(app)
    add_account(app, "jane@example.com")
    assert admin.get("/admin/accounts/").status_code == 200
    yield app, admin, domain
    private_mariadb.resume()  # whatever the test did
    with app.app_context():
        get_engine().dispose()


def test_a_hung_database_gets_503s_in_seconds_and_writes_nothing(private_mariadb, hung_setup):
    app, admin, _ = hung_setup
    before = snapshot(app)
    private_mariadb.hang()
    try:
        assert_away_json(within(ANSWER_WITHIN, lambda: sync_call(admin.client, CREATE_JANE)))
        assert_away_page(within(ANSWER_WITHIN, lambda: admin.get("/admin/accounts/")))
        toast = within(ANSWER_WITHIN, lambda: admin.post("/admin/accounts/new/", NEW_ACCOUNT, htmx=True))
        assert toast.status_code == 503 and AWAY in toast.headers["HX-Trigger"]
        cli = within(ANSWER_WITHIN, lambda: app.test_cli_runner().invoke(args=["opmail", "refresh-usage"]))
        assert cli.exit_code == 1
        assert cli.output.startswith("Error: the database is not answering (") and cli.output.count("\n") == 1
        # Static files need no database: they come at once.
        for url in ("/static/opmail/opmail.js", "/admin/static/admin/js/helpers.js"):
            static = within(1, lambda url=url: admin.get(url))
            static.close()
            assert static.status_code == 200
    finally:
        private_mariadb.resume()
    assert snapshot(app) == before
    # The workers are not stuck: the next requests find fresh connections and work.
    assert admin.get("/admin/accounts/").status_code == 200
    assert sync_call(admin.client, CREATE_JANE).json == {"status": "ok"}
    assert "jane@example.com" in admin.get("/admin/accounts/?q=jane").text


def test_a_database_that_hangs_mid_delete_keeps_everything(private_mariadb, hung_setup):
    """Frozen between the cascade's statements: the request answers 503, and the transaction the
    server holds open is rolled back once it runs again (the client is gone). Nothing is half-deleted."""
    app, admin, domain = hung_setup
    before = snapshot(app)

    def freeze_before_the_accounts_go(connection, cursor, statement, *args) -> None:
        if statement.startswith("DELETE FROM mail_accounts"):
            private_mariadb.hang()

    with database_hook(app, freeze_before_the_accounts_go):
        answer = within(
            ANSWER_WITHIN,
            lambda: admin.post(f"/admin/domains/delete/?id={domain}", {"admin_password": ADMIN_PASSWORD}),
        )
    assert_away_page(answer)
    private_mariadb.resume()
    assert snapshot(app) == before
    assert admin.get(f"/admin/domains/delete/?id={domain}").status_code == 200
