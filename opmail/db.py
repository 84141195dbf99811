"""Access to the database opmail is bound to, whichever Flask-SQLAlchemy object owns it."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import Column, Computed, Connection, Dialect, Engine, event, inspect, select, update
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateColumn

from .models import BIND_KEY, Base, MailAccount, MailQuotaUsage


def get_session() -> Session:
    """The request's session (opmail's own ``db`` standalone, the host's when embedded)."""
    return current_app.extensions["opmail"].db.session


def get_engine() -> Engine:
    return current_app.extensions["opmail"].db.engines[BIND_KEY]


def create_schema() -> list[str]:
    """Create the opmail tables, and bring the ones an older opmail made up to date.

    Adds the missing columns and indexes, then creates the missing tables and the triggers.
    Safe to run again: a database already up to date is left alone. Returns what it changed.
    """
    with get_engine().begin() as connection:
        added = upgrade_tables(connection)
        # After the columns exist: create_all also runs the triggers (CREATE TRIGGER IF NOT EXISTS)
        # that keep mail_accounts.used_bytes equal to mail_quota_usage.bytes.
        Base.metadata.create_all(connection)
        if "Added column mail_accounts.used_bytes" in added:
            copy_recorded_usage(connection)
    return added


def upgrade_tables(connection: Connection) -> list[str]:
    """Add the model's columns and indexes that the existing opmail tables lack; drop the retired."""
    inspector = inspect(connection)
    existing = set(inspector.get_table_names())
    preparer = connection.dialect.identifier_preparer
    added = []
    for table in Base.metadata.sorted_tables:
        if table.name not in existing:
            continue  # create_all makes it whole
        columns = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in columns:
                connection.exec_driver_sql(
                    f"ALTER TABLE {preparer.format_table(table)} "
                    f"ADD COLUMN {column_ddl(column, connection.dialect)}"
                )
                added.append(f"Added column {table.name}.{column.name}")
        indexes = {index["name"] for index in inspector.get_indexes(table.name)}
        for index in sorted(table.indexes, key=lambda index: index.name):
            if index.name not in indexes:
                index.create(connection)
                added.append(f"Added index {index.name}")
        # After the new ones exist: on MariaDB the foreign key on domain_id moves to its successor.
        for name, column in RETIRED_INDEXES.get(table.name, {}).items():
            if name in indexes:
                # Plain DDL: an Index object would join the model's table and come back with it.
                on_table = "" if connection.dialect.name == "sqlite" else f" ON {preparer.format_table(table)}"
                connection.exec_driver_sql(f"DROP INDEX {preparer.quote(name)}{on_table}")
                added.append(f"Dropped index {name} (the ({column}, …) indexes cover it)")
    return added


# Single-column indexes older opmails made, which today's two-column ones start with: each only
# slowed every write (a bulk delete of 10,000 accounts updates every index of each row).
RETIRED_INDEXES = {
    "mail_accounts": {"ix_mail_accounts_deleted_at": "deleted_at", "ix_mail_accounts_domain_id": "domain_id"}
}


def column_ddl(column: Column, dialect: Dialect) -> str:
    """``column``'s definition as CREATE TABLE would write it, for ALTER TABLE … ADD COLUMN."""
    if dialect.name == "sqlite" and column.computed is not None and column.computed.persisted:
        # SQLite cannot add a STORED generated column to a table; a VIRTUAL one reads, sorts and
        # indexes the same (it is computed on read instead of on write).
        column = Column(
            column.name,
            column.type,
            Computed(column.computed.sqltext, persisted=False),
            nullable=column.nullable,
        )
    return str(CreateColumn(column).compile(dialect=dialect))


def copy_recorded_usage(connection: Connection) -> None:
    """Fill a just-added ``used_bytes`` from what Dovecot recorded (the triggers do the rest)."""
    accounts, usage = MailAccount.__table__, MailQuotaUsage.__table__
    recorded = select(usage.c.bytes).where(usage.c.email == accounts.c.email)
    connection.execute(
        update(accounts).where(recorded.exists()).values(used_bytes=recorded.scalar_subquery())
    )


def enforce_sqlite_foreign_keys(engine: Engine) -> None:
    """SQLite ignores foreign keys unless each connection asks for them."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
