"""A write that loses a deadlock (MariaDB 1213, also Galera's certification failure) runs again, a
bounded number of times, then answers the documented 503; a retry never applies a change twice.

The deadlocks are injected in the driver (SQLite and the shared MariaDB): the last statement of the
transaction fails, after its other writes were sent, so a retry that kept them would show twice.
tests/test_galera.py has the real conflicts, on a 3-node cluster.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from opmail.db import RETRY_ATTEMPTS, get_engine
from opmail.models import Admin, AdminEvent, MailAccount, MailAddress, MailDomain, SyncEvent
from tests.conftest import ADMIN_PASSWORD
from tests.helpers import (
    SYNC_SECRET,
    add_account,
    add_domain,
    round_trips,
    rows,
    snapshot,
    sync_call,
)

AWAY = "The mail database is not answering. Try again in a moment."
CREATE_JANE = {"action": "create", "email": "jane@example.com", "password": "from the panel"}
DEADLOCK = (1213, "Deadlock found when trying to get lock; try restarting transaction")
LOST = (2013, "Lost connection to server during query")


@pytest.fixture
def app_overrides():
    return {"MAIL_SYNC_SECRET": SYNC_SECRET}


class Failures:
    """How many times the injected error was raised."""

    def __init__(self) -> None:
        self.raised = 0


@contextmanager
def statement_fails(app, times: int, when: Callable[[str], bool], error=DEADLOCK) -> Iterator[Failures]:
    """The first ``times`` statements ``when`` picks fail in the driver with ``error``."""
    with app.app_context():
        engine = get_engine()
    dbapi_error = engine.dialect.loaded_dbapi.OperationalError
    failures = Failures()

    def fail(connection, cursor, statement, *args) -> None:
        if when(statement) and failures.raised < times:
            failures.raised += 1
            raise dbapi_error(*error)

    event.listen(engine, "before_cursor_execute", fail)
    try:
        yield failures
    finally:
        event.remove(engine, "before_cursor_execute", fail)


@contextmanager
def commit_fails(app, monkeypatch, times: int, error=DEADLOCK) -> Iterator[Failures]:
    """The first ``times`` COMMITs fail with ``error``: where Galera reports a certification failure."""
    with app.app_context():
        engine = get_engine()
    dbapi_error = engine.dialect.loaded_dbapi.OperationalError
    failures = Failures()
    do_commit = engine.dialect.do_commit

    def fail(dbapi_connection) -> None:
        if failures.raised < times:
            failures.raised += 1
            dbapi_connection.rollback()  # as the server does: nothing of it stays
            raise dbapi_error(*error)
        do_commit(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_commit", fail)
    yield failures


def inserts_into(table: str) -> Callable[[str], bool]:
    return lambda statement: statement.startswith(f"INSERT INTO {table}")


def count(app, model) -> int:
    return rows(app, sa.select(sa.func.count()).select_from(model))[0][0]


# --- the webhook ------------------------------------------------------------------------------------


def test_webhook_create_that_deadlocks_runs_again_and_writes_once(app, client):
    with statement_fails(app, RETRY_ATTEMPTS - 1, inserts_into("sync_events")) as failures:
        response = sync_call(client, CREATE_JANE)
    assert failures.raised == RETRY_ATTEMPTS - 1
    assert response.status_code == 200 and response.json == {"status": "ok"}
    assert rows(app, sa.select(MailAccount.email)) == [("jane@example.com",)]
    assert rows(app, sa.select(MailDomain.domain)) == [("example.com",)]
    assert rows(app, sa.select(MailAddress.address)) == [("jane@example.com",)]
    assert rows(app, sa.select(SyncEvent.action, SyncEvent.outcome)) == [("create", "created")]


def test_webhook_certification_failure_at_commit_runs_again(app, client, monkeypatch):
    with commit_fails(app, monkeypatch, 2) as failures:
        response = sync_call(client, CREATE_JANE)
    assert failures.raised == 2 and response.json == {"status": "ok"}
    assert rows(app, sa.select(SyncEvent.outcome)) == [("created",)]
    assert count(app, MailAccount) == 1


def test_webhook_answers_503_after_the_last_attempt_and_writes_nothing(app, client):
    before = snapshot(app)
    with statement_fails(app, 100, inserts_into("sync_events")) as failures:
        response = sync_call(client, CREATE_JANE)
    assert failures.raised == RETRY_ATTEMPTS
    assert response.status_code == 503 and response.headers["Retry-After"] == "10"
    assert response.json == {"error": AWAY}
    assert snapshot(app) == before
    assert sync_call(client, CREATE_JANE).json == {"status": "ok"}  # and the next call works


def test_a_lock_wait_timeout_is_not_retried(app, client):
    timeout = (1205, "Lock wait timeout exceeded; try restarting transaction")
    with statement_fails(app, 100, inserts_into("sync_events"), error=timeout) as failures:
        response = sync_call(client, CREATE_JANE)
    assert failures.raised == 1 and response.status_code == 503


@pytest.mark.mariadb_only
def test_a_connection_lost_before_commit_is_retried_once(app, client):
    with statement_fails(app, 1, inserts_into("sync_events"), error=LOST) as failures:
        assert sync_call(client, CREATE_JANE).json == {"status": "ok"}
    assert failures.raised == 1
    assert rows(app, sa.select(SyncEvent.outcome)) == [("created",)]
    with statement_fails(app, 2, inserts_into("sync_events"), error=LOST) as failures:
        assert sync_call(client, CREATE_JANE).status_code == 503
    assert failures.raised == 2
    assert rows(app, sa.select(SyncEvent.outcome)) == [("created",)]


@pytest.mark.mariadb_only
def test_a_connection_lost_during_commit_is_not_retried(app, client, monkeypatch):
    """The COMMIT may have reached the server: running the call again could log it twice."""
    with commit_fails(app, monkeypatch, 1, error=LOST) as failures:
        assert sync_call(client, CREATE_JANE).status_code == 503
    assert failures.raised == 1
    assert count(app, SyncEvent) == 0  # this fake COMMIT rolled back; the point is: one try only


# On MariaDB a webhook call's writes and its COMMIT go as one query (opmail.db.write_and_commit):
# once jane's domain exists, her create is one read, then the two inserts, the log row and COMMIT.
IS_COMMIT = "COMMIT".__eq__


@pytest.mark.mariadb_only
def test_a_deadlock_at_a_batched_commit_runs_the_call_again(app, client):
    sync_call(client, {**CREATE_JANE, "email": "ann@example.com"})
    with statement_fails(app, 2, IS_COMMIT) as failures:
        assert sync_call(client, CREATE_JANE).json == {"status": "ok"}
    assert failures.raised == 2
    assert rows(app, sa.select(SyncEvent.email, SyncEvent.outcome).order_by(SyncEvent.id)) == [
        ("ann@example.com", "created"),
        ("jane@example.com", "created"),
    ]


@pytest.mark.mariadb_only
def test_a_connection_lost_at_a_batched_commit_is_not_run_again(app, client):
    sync_call(client, {**CREATE_JANE, "email": "ann@example.com"})
    with statement_fails(app, 1, IS_COMMIT, error=LOST) as failures:
        assert sync_call(client, CREATE_JANE).status_code == 503
    assert failures.raised == 1
    assert rows(app, sa.select(MailAccount.email)) == [("ann@example.com",)]


@pytest.mark.mariadb_only
def test_a_batch_that_fails_midway_leaves_nothing_of_it(app, client):
    """A real error from the server after the UPDATE ran: the COMMIT after it never runs, and the
    connection goes back to the pool rolled back, not with the UPDATE waiting for someone's COMMIT."""
    sync_call(client, CREATE_JANE)
    before = snapshot(app)
    with app.app_context(), get_engine().begin() as connection:
        connection.exec_driver_sql(
            "CREATE TRIGGER refuse_sync_log BEFORE INSERT ON sync_events FOR EACH ROW "
            "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by the test'"
        )
    try:
        response = sync_call(client, {"action": "password", "email": "jane@example.com", "password": "never stored"})
    finally:
        with app.app_context(), get_engine().begin() as connection:
            connection.exec_driver_sql("DROP TRIGGER refuse_sync_log")
    assert response.status_code == 503 and response.json == {"error": AWAY}
    assert snapshot(app) == before
    # The next call, on the same pooled connection, commits only its own change.
    assert sync_call(client, {"action": "delete", "email": "nobody@example.com"}).json == {"status": "ok"}
    after = snapshot(app)
    assert after["mail_accounts"] == before["mail_accounts"]
    assert len(after["sync_events"]) == len(before["sync_events"]) + 1


# --- admin forms and bulk actions -----------------------------------------------------------------


def test_admin_form_that_deadlocks_creates_one_account_and_one_audit_entry(app, admin):
    add_domain(app)
    new = {"email": "ann@example.com", "password": "a new password", "quota_mb": "0"}
    with statement_fails(app, 3, inserts_into("admin_events")) as failures:
        response = admin.post("/admin/accounts/new/", new)
    assert failures.raised == 3
    assert response.status_code == 302
    assert rows(app, sa.select(MailAccount.email)) == [("ann@example.com",)]
    assert rows(app, sa.select(AdminEvent.action, AdminEvent.targets)) == [("account.create", "ann@example.com")]


def test_bulk_suspend_that_deadlocks_suspends_once(app, admin):
    add_domain(app)
    ids = [str(add_account(app, f"{name}@example.com")) for name in ("alice", "bob")]
    with statement_fails(app, RETRY_ATTEMPTS - 1, inserts_into("admin_events")):
        response = admin.post(
            "/admin/accounts/action/", {"action": "suspend", "rowid": ids, "url": "/admin/accounts/"}, htmx=True
        )
    assert response.status_code == 200 and '"2 accounts suspended."' in response.headers["HX-Trigger"]
    assert rows(app, sa.select(MailAccount.is_active).distinct()) == [(False,)]
    assert rows(app, sa.select(AdminEvent.action).where(AdminEvent.action != "account.create")) == [
        ("account.suspend",)
    ]


def test_bulk_suspend_answers_503_after_the_last_attempt(app, admin):
    add_domain(app)
    ids = [str(add_account(app, f"{name}@example.com")) for name in ("alice", "bob")]
    before = snapshot(app)
    with statement_fails(app, 100, inserts_into("admin_events")) as failures:
        response = admin.post(
            "/admin/accounts/action/", {"action": "suspend", "rowid": ids, "url": "/admin/accounts/"}, htmx=True
        )
    assert failures.raised == RETRY_ATTEMPTS
    assert response.status_code == 503 and AWAY in response.headers["HX-Trigger"]
    assert snapshot(app) == before
    assert rows(app, sa.select(MailAccount.is_active).distinct()) == [(True,)]


# --- the command line -----------------------------------------------------------------------------


def test_cli_create_admin_that_deadlocks_creates_one(app):
    runner = app.test_cli_runner()
    with statement_fails(app, 2, inserts_into("admins")) as failures:
        result = runner.invoke(args=["opmail", "create-admin", "bob", "--password-stdin"], input=ADMIN_PASSWORD + "\n")
    assert failures.raised == 2
    assert result.exit_code == 0 and "Admin 'bob' created." in result.output
    assert rows(app, sa.select(Admin.username)) == [("bob",)]


def test_cli_answers_the_outage_line_after_the_last_attempt(app):
    runner = app.test_cli_runner()
    with statement_fails(app, 100, inserts_into("admins")) as failures:
        result = runner.invoke(args=["opmail", "create-admin", "bob", "--password-stdin"], input=ADMIN_PASSWORD + "\n")
    assert failures.raised == RETRY_ATTEMPTS
    assert result.exit_code == 1 and result.output.startswith("Error: the database is not answering (")
    assert rows(app, sa.select(Admin.username)) == []


# --- connections: no pre-ping, no ROLLBACK after COMMIT, and still nothing left open --------------


@pytest.mark.mariadb_only
def test_a_webhook_call_is_one_round_trip(app, client):
    """A create of a new account, a password and a delete: the writes, the sync log row and the
    COMMIT as one query each; no reads first, no pre-ping and no ROLLBACK on the way back to the
    pool."""
    sync_call(client, CREATE_JANE)  # the domain exists, and the pool holds a connection
    with round_trips(app) as sent:
        assert sync_call(client, {**CREATE_JANE, "email": "ann@example.com"}).json == {"status": "ok"}
        assert sync_call(client, {"action": "password", "email": "ann@example.com", "password": "new"}).json == {
            "status": "ok"
        }
        assert sync_call(client, {"action": "delete", "email": "nobody@example.com"}).json == {"status": "ok"}
    assert sent == [
        ["INSERT", "INSERT", "INSERT", "COMMIT"],
        ["UPDATE", "INSERT", "COMMIT"],
        ["UPDATE", "INSERT", "COMMIT"],
    ]
    assert rows(app, sa.select(SyncEvent.email, SyncEvent.outcome).order_by(SyncEvent.id))[1:] == [
        ("ann@example.com", "created"),
        ("ann@example.com", "password"),
        ("nobody@example.com", "noop"),
    ]


@pytest.mark.mariadb_only
def test_a_create_of_an_address_that_exists_reads_after_its_guess(app, client):
    """The create guesses a new account; the claim's INSERT fails on the existing one, the ROLLBACK
    frees what it locked, and the call reads, then updates: three round trips more than a new
    account, and one sync log row."""
    sync_call(client, CREATE_JANE)
    with round_trips(app) as sent:
        assert sync_call(client, {**CREATE_JANE, "quota_mb": 7}).json == {"status": "ok"}
    assert sent == [
        ["INSERT", "INSERT", "INSERT", "COMMIT"],
        ["ROLLBACK"],
        ["SELECT"],
        ["SELECT"],
        ["UPDATE", "INSERT", "COMMIT"],
    ]
    assert rows(app, sa.select(SyncEvent.outcome).order_by(SyncEvent.id)) == [("created",), ("updated",)]
    assert rows(app, sa.select(MailAccount.email, MailAccount.quota_mb)) == [(CREATE_JANE["email"], 7)]


@pytest.mark.mariadb_only
def test_a_connection_returned_mid_transaction_is_still_rolled_back(app):
    """A raw DB-API user that did not commit: its write must not reach the next user's COMMIT."""
    add_domain(app)
    with app.app_context():
        raw = get_engine().raw_connection()
        with raw.cursor() as cursor:
            cursor.execute("UPDATE mail_domains SET is_active = 0")
        raw.close()  # back to the pool, transaction open
        with get_engine().begin() as connection:  # the same pooled connection, a new transaction
            connection.exec_driver_sql("SELECT 1")
    assert rows(app, sa.select(MailDomain.is_active)) == [(True,)]


# --- every rule that writes is retried ------------------------------------------------------------

RULES = sorted((Path(__file__).resolve().parent.parent / "opmail" / "rules").glob("*.py"))
# What opens a write transaction in a rule: core.transaction(), or the webhook's own connection.
OPENS_A_TRANSACTION = {"transaction", "_synced"}


def _unretried_writers(path: Path) -> list[str]:
    """Top-level functions of ``path`` that open a transaction but are not decorated @retried."""
    found = []
    for node in ast.parse(path.read_text()).body:
        if not isinstance(node, ast.FunctionDef) or node.name in OPENS_A_TRANSACTION:
            continue
        calls = {
            call.func.id
            for call in ast.walk(node)
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
        }
        decorators = {d.id for d in node.decorator_list if isinstance(d, ast.Name)}
        if calls & OPENS_A_TRANSACTION and "retried" not in decorators:
            found.append(node.name)
    return found


@pytest.mark.parametrize("path", RULES, ids=lambda path: path.stem)
def test_every_rule_that_opens_a_transaction_is_retried(path):
    """A new rule gets ``@retried`` (opmail.db) too, or a deadlock on Galera answers 503 at once."""
    assert _unretried_writers(path) == []
