"""`flask opmail init-db` on a database an older opmail created: it adds what is missing, once."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from opmail.db import RETIRED_INDEXES, create_schema, get_engine
from opmail.models import MailAccount
from tests.helpers import add_domain
from tests.test_usage_sort import MB, dovecot_upsert, listed

# What opmail added after its first releases: the usage sorts' columns and indexes, the 2FA codes.
NEW_INDEXES = [
    "ix_mail_accounts_deleted_at_email",
    "ix_mail_accounts_deleted_at_usage_share",
    "ix_mail_accounts_deleted_at_used_bytes",
    "ix_mail_accounts_domain_id_email",
    "ix_mail_accounts_domain_id_usage_share",
    "ix_mail_accounts_domain_id_used_bytes",
]
USAGE_TRIGGERS = [
    "mail_quota_usage_copy_insert",
    "mail_quota_usage_copy_update",
    "mail_quota_usage_copy_delete",
    "mail_accounts_usage_on_insert",
]
FK = "fk_mail_accounts_domain_id_mail_domains"


def make_it_old(app) -> None:
    """Take today's schema back to an older opmail's: no usage columns, indexes, triggers, codes."""
    with app.app_context(), get_engine().begin() as connection:
        mysql = connection.dialect.name != "sqlite"
        for trigger in USAGE_TRIGGERS:
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {trigger}")
        if mysql:  # MariaDB keeps an index the foreign key needs: the old one was the key's own
            connection.exec_driver_sql(f"ALTER TABLE mail_accounts DROP FOREIGN KEY {FK}")
        for index in NEW_INDEXES:
            connection.exec_driver_sql(
                f"DROP INDEX {index} ON mail_accounts" if mysql else f"DROP INDEX {index}"
            )
        # The older opmail's own single-column indexes (on MariaDB, the key's index again).
        for index, column in RETIRED_INDEXES["mail_accounts"].items():
            connection.exec_driver_sql(f"CREATE INDEX {index} ON mail_accounts ({column})")
        connection.exec_driver_sql("ALTER TABLE mail_accounts DROP COLUMN usage_share")
        connection.exec_driver_sql("ALTER TABLE mail_accounts DROP COLUMN used_bytes")
        connection.exec_driver_sql("ALTER TABLE admins DROP COLUMN totp_recovery_codes")
        if mysql:
            connection.exec_driver_sql(
                f"ALTER TABLE mail_accounts ADD CONSTRAINT {FK} "
                "FOREIGN KEY (domain_id) REFERENCES mail_domains (id)"
            )


def add_old_account(app, domain_id: int, email: str, quota_mb: int) -> None:
    """An account as the older opmail wrote it (its model had no used_bytes)."""
    with app.app_context(), get_engine().begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO mail_accounts (domain_id, email, password, display_name, quota_mb, "
                "is_active, created_at, updated_at) VALUES (:domain_id, :email, '{BLF-CRYPT}x', "
                ":name, :quota_mb, 1, :now, :now)"
            ),
            {"domain_id": domain_id, "email": email, "name": email.upper(), "quota_mb": quota_mb,
             "now": "2024-01-02 03:04:05"},
        )


def schema(app) -> tuple[set[str], set[str], set[str]]:
    with app.app_context(), get_engine().connect() as connection:
        inspector = sa.inspect(connection)
        return (
            {column["name"] for column in inspector.get_columns("mail_accounts")},
            {index["name"] for index in inspector.get_indexes("mail_accounts")},
            {column["name"] for column in inspector.get_columns("admins")},
        )


@pytest.fixture
def old_database(app, admin):
    """Logged in first (the admin's row predates the upgrade too), then the schema made old with
    three accounts in it and the usage Dovecot recorded for two of them."""
    domain_id = add_domain(app, "example.com")
    make_it_old(app)
    for email, quota in {"a@example.com": 100, "b@example.com": 10, "c@example.com": 0}.items():
        add_old_account(app, domain_id, email, quota)
    dovecot_upsert(app, "a@example.com", 50 * MB)
    dovecot_upsert(app, "b@example.com", 9 * MB)
    yield
    with app.app_context():
        create_schema()  # whatever happened, leave MariaDB's shared database whole for what follows


def test_init_db_adds_the_missing_columns_and_indexes(old_database, app, runner):
    assert "used_bytes" not in schema(app)[0]

    result = runner.invoke(args=["opmail", "init-db"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[-1] == "Schema ready."
    assert {
        "Added column mail_accounts.used_bytes",
        "Added column mail_accounts.usage_share",
        "Added column admins.totp_recovery_codes",
        *(f"Added index {index}" for index in NEW_INDEXES),
        "Dropped index ix_mail_accounts_deleted_at (the (deleted_at, …) indexes cover it)",
        "Dropped index ix_mail_accounts_domain_id (the (domain_id, …) indexes cover it)",
    } == set(lines[:-1])
    account_columns, account_indexes, admin_columns = schema(app)
    assert {"used_bytes", "usage_share"} <= account_columns
    assert set(NEW_INDEXES) <= account_indexes
    assert not set(RETIRED_INDEXES["mail_accounts"]) & account_indexes
    assert "totp_recovery_codes" in admin_columns


def test_init_db_keeps_the_accounts_and_copies_the_recorded_usage(old_database, app, runner):
    runner.invoke(args=["opmail", "init-db"])

    accounts = MailAccount.__table__
    with app.app_context(), get_engine().connect() as connection:
        found = connection.execute(
            sa.select(accounts.c.email, accounts.c.display_name, accounts.c.quota_mb,
                      accounts.c.used_bytes).order_by(accounts.c.email)
        ).all()
    assert [tuple(row) for row in found] == [
        ("a@example.com", "A@EXAMPLE.COM", 100, 50 * MB),
        ("b@example.com", "B@EXAMPLE.COM", 10, 9 * MB),
        ("c@example.com", "C@EXAMPLE.COM", 0, 0),
    ]


def test_init_db_a_second_time_adds_nothing(old_database, runner):
    runner.invoke(args=["opmail", "init-db"])

    result = runner.invoke(args=["opmail", "init-db"])

    assert result.exit_code == 0, result.output
    assert result.output == "Schema ready.\n"


def test_upgraded_database_sorts_by_usage_and_follows_dovecot(old_database, app, runner, admin):
    runner.invoke(args=["opmail", "init-db"])

    by_usage = listed(admin, "sort=usage&dir=desc")
    by_share = listed(admin, "sort=percent&dir=desc")

    assert by_usage == ["a@example.com", "b@example.com", "c@example.com"]
    assert by_share == ["b@example.com", "a@example.com", "c@example.com"]
    # The triggers came with the upgrade: what Dovecot writes next reaches the list.
    dovecot_upsert(app, "c@example.com", 70 * MB)
    assert listed(admin, "sort=usage&dir=desc")[0] == "c@example.com"
