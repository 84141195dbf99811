"""Access to the database opmail is bound to, whichever Flask-SQLAlchemy object owns it."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from . import migrations
from .models import BIND_KEY


def get_session() -> Session:
    """The request's session (opmail's own ``db`` standalone, the host's when embedded)."""
    return current_app.extensions["opmail"].db.session


def get_engine() -> Engine:
    return current_app.extensions["opmail"].db.engines[BIND_KEY]


def create_schema() -> list[str]:
    """Create the opmail tables, or bring an older opmail's to the newest revision.

    Safe to run again: a database already up to date is left alone. Returns what it changed, in
    the order it changed it (opmail.migrations).
    """
    with get_engine().begin() as connection:
        return migrations.upgrade(connection)


def enforce_sqlite_foreign_keys(engine: Engine) -> None:
    """SQLite ignores foreign keys unless each connection asks for them."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
