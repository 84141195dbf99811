"""Access to the database opmail is bound to, whichever Flask-SQLAlchemy object owns it."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import (
    Column,
    Computed,
    Connection,
    Dialect,
    Engine,
    event,
    func,
    insert,
    inspect,
    literal,
    select,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateColumn

from .models import (
    BIND_KEY,
    Base,
    MailAccount,
    MailAddress,
    MailAlias,
    MailAutoresponder,
    MailQuotaUsage,
    MailSieveScript,
    utcnow,
)
from .sieve import SCRIPT_NAME, vacation_script


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
        existing = set(inspect(connection).get_table_names())
        added = upgrade_tables(connection)
        # After the columns exist: create_all also runs the triggers (CREATE TRIGGER IF NOT EXISTS)
        # that keep mail_accounts.used_bytes equal to mail_quota_usage.bytes.
        Base.metadata.create_all(connection)
        if "Added column mail_accounts.used_bytes" in added:
            copy_recorded_usage(connection)
        if "mail_accounts" in existing and "mail_addresses" not in existing:
            added += claim_existing_addresses(connection)
        if "mail_autoresponders" in existing and "mail_sieve_scripts" not in existing:
            added += write_existing_scripts(connection)
    return added


def claim_existing_addresses(connection: Connection) -> list[str]:
    """Fill a just-created ``mail_addresses`` from the accounts and aliases an older opmail made.

    Where an alias has an account's address (older releases let that happen), the account keeps
    the address, which is where Postfix delivers; the alias is named so the admin can remove it.
    """
    claims, accounts, aliases = MailAddress.__table__, MailAccount.__table__, MailAlias.__table__
    connection.execute(
        insert(claims).from_select(
            ["address", "domain_id", "kind"],
            select(accounts.c.email, accounts.c.domain_id, literal("account")),
        )
    )
    clashes = connection.scalars(
        select(aliases.c.alias_email).distinct().where(aliases.c.alias_email.in_(select(claims.c.address)))
    ).all()
    connection.execute(
        insert(claims).from_select(
            ["address", "domain_id", "kind"],
            select(aliases.c.alias_email, func.min(aliases.c.domain_id), literal("alias"))
            .where(aliases.c.alias_email.not_in(select(accounts.c.email)))
            .group_by(aliases.c.alias_email),
        )
    )
    return ["Claimed the addresses of the existing accounts and aliases"] + [
        f"{address} is an account and an alias: mail goes to the account. Delete the alias "
        "under Admin → Aliases."
        for address in clashes
    ]


def write_existing_scripts(connection: Connection) -> list[str]:
    """Give every active autoresponder an older opmail made the Sieve script Dovecot reads."""
    replies = MailAutoresponder.__table__
    rows = [
        {
            "email": row.email,
            "name": SCRIPT_NAME,
            "script": vacation_script(row.email, row.subject, row.body, row.starts_at, row.ends_at),
            "created_at": utcnow(),
        }
        for row in connection.execute(select(replies).where(replies.c.is_active.is_(True)))
    ]
    if not rows:
        return []
    connection.execute(insert(MailSieveScript.__table__), rows)
    return [f"Wrote the Sieve scripts of {len(rows)} active autoresponders"]


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
