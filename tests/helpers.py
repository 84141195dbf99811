"""Small builders for test data, going through the same rules the admin uses, and the Panel
agent's webhook call."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from opmail.db import get_engine
from opmail.models import Base
from opmail.rules import accounts, domains

ROOT = Path(__file__).resolve().parent.parent

# The shortest secret opmail accepts (32 characters); set it with an ``app_overrides`` fixture.
SYNC_SECRET = "0123456789abcdef0123456789abcdef"
SYNC_URL = "/api/sync/account"


def sync_call(client, body, secret: str | None = SYNC_SECRET, **kwargs):
    """POST ``body`` as the agent does: an object as JSON, bytes as they are, with the secret."""
    headers = {} if secret is None else {"X-Sync-Secret": secret}
    data = body if isinstance(body, bytes) else json.dumps(body)
    kwargs.setdefault("content_type", "application/json")
    return client.post(SYNC_URL, data=data, headers=headers, **kwargs)


def add_domain(app, name: str = "example.com") -> int:
    with app.app_context():
        return domains.create_domain(name).id


def add_account(app, email: str, password: str = "mailbox-pass-1", quota_mb: int = 0, **extra) -> int:
    with app.app_context():
        account, _ = accounts.create_account(email, password, quota_mb, **extra)
        return account.id


# A refused password is meant to leave a trace: the admin's failed-attempt count (opmail.auth).
_NOT_IN_SNAPSHOT = {("admins", "failed_logins"), ("admins", "locked_until")}


def snapshot(app) -> dict[str, list[tuple]]:
    """Every row of every opmail table, to prove a refused request changed nothing."""
    with app.app_context(), get_engine().connect() as connection:
        return {
            table.name: sorted(map(tuple, connection.execute(_select_kept(table)).all()), key=repr)
            for table in Base.metadata.sorted_tables
        }


def _select_kept(table: sa.Table) -> sa.Select:
    return sa.select(*(c for c in table.columns if (table.name, c.name) not in _NOT_IN_SNAPSHOT))


def rows(app, statement) -> list:
    with app.app_context(), get_engine().connect() as connection:
        return connection.execute(statement).all()


_VERSION_RE = re.compile(r'name="version"[^>]*value="([^"]*)"')


def opened_version(admin, account_id: int) -> str:
    """The account version the account page's forms carry: what a browser that opened it sends."""
    page = admin.get(f"/admin/accounts/edit/?id={account_id}")
    match = _VERSION_RE.search(page.text)
    assert match, "no version field on the account page"
    return match.group(1)


def start_up_errors(tmp_path, **environment: str) -> list[str]:
    """The lines ``flask routes`` prints when started with a bad setting in ``environment`` (it must
    fail): what an operator sees, read from a process of its own, not from a test app."""
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path}/x.db", **environment}
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "routes"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 1
    return result.stderr.strip().splitlines()


@contextmanager
def round_trips(app) -> Iterator[list[list[str]]]:
    """Every command PyMySQL sends (a query, a COMMIT, a ROLLBACK, a ping), each as the first word
    of its statements: one entry per round trip."""
    with app.app_context():
        engine = get_engine()
    sent: list[list[str]] = []
    connection_class = engine.dialect.loaded_dbapi.connections.Connection
    original = connection_class._execute_command

    def send(self, command, sql):
        text = sql.decode() if isinstance(sql, bytes) else sql
        sent.append([statement.split()[0] for statement in text.split(";\n")] if text else [f"command {command}"])
        return original(self, command, sql)

    connection_class._execute_command = send
    try:
        yield sent
    finally:
        connection_class._execute_command = original
