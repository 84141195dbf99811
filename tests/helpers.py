"""Small builders for test data, going through the same rules the admin uses."""

from __future__ import annotations

import sqlalchemy as sa

from opmail import accounts
from opmail.db import get_engine
from opmail.models import Base


def add_domain(app, name: str = "example.com") -> int:
    with app.app_context():
        return accounts.create_domain(name).id


def add_account(app, email: str, password: str = "mailbox-pass-1", quota_mb: int = 0, **extra) -> int:
    with app.app_context():
        account, _ = accounts.create_account(email, password, quota_mb, **extra)
        return account.id


def snapshot(app) -> dict[str, list[tuple]]:
    """Every row of every opmail table, to prove a refused request changed nothing."""
    with app.app_context(), get_engine().connect() as connection:
        return {
            table.name: sorted(map(tuple, connection.execute(sa.select(table)).all()), key=repr)
            for table in Base.metadata.sorted_tables
        }


def rows(app, statement) -> list:
    with app.app_context(), get_engine().connect() as connection:
        return connection.execute(statement).all()
