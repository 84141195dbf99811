"""The MariaDB rights docs/mail-flow.md gives opmail are enough, for init-db too (Dovecot's and
Postfix's are what the private mail server of test_mail_flow.py connects with)."""

from __future__ import annotations

import os
import secrets

import pytest
import sqlalchemy as sa

from opmail.db import create_schema, get_engine
from opmail.rules import aliases, groups
from tests.conftest import make_app, mysql_database, require
from tests.helpers import add_account, add_domain
from tests.mailserver import documented_grants, drop_user, grant_user


def test_every_server_has_documented_grants():
    assert documented_grants("opmail") == ["SELECT, INSERT, UPDATE, DELETE ON {db}.*", "CREATE, ALTER, INDEX, TRIGGER ON {db}.*"]
    assert "SELECT ON {db}.mail_sieve_scripts" in documented_grants("dovecot")
    assert "SELECT ON {db}.mail_forwards" in documented_grants("postfix")


@pytest.fixture
def empty_database():
    """A new MariaDB database of its own (the users below are granted on it), dropped afterwards."""
    server = os.environ.get("OPMAIL_TEST_MYSQL_URL")
    require(server is not None, "OPMAIL_TEST_MYSQL_URL is not set: no MariaDB to test against")
    with mysql_database(server, f"opmail_grants_{secrets.token_hex(4)}") as url:
        yield url


def test_opmail_user_creates_upgrades_and_uses_the_schema(empty_database, tmp_path):
    user_url = grant_user(empty_database, "opmail")
    try:
        app = make_app(user_url, tmp_path)
        with app.app_context():
            create_schema()
        # A database of the release before mail flow: init-db runs that revision as this user.
        root = sa.create_engine(empty_database)
        with root.begin() as connection:
            connection.exec_driver_sql("DROP TABLE mail_addresses, mail_forwards, mail_sieve_scripts")
            connection.exec_driver_sql("ALTER TABLE mail_groups DROP INDEX ix_mail_groups_email, DROP COLUMN email")
            connection.exec_driver_sql("ALTER TABLE admins DROP COLUMN totp_pending_secret")
            connection.exec_driver_sql(
                "ALTER TABLE admins MODIFY username VARCHAR(64) COLLATE utf8mb4_unicode_ci NOT NULL"
            )
            connection.exec_driver_sql("UPDATE opmail_alembic_version SET version_num = '56473bf69181'")
        root.dispose()
        with app.app_context():
            assert create_schema() == [
                "Created table mail_addresses",
                "Created table mail_forwards",
                "Created table mail_sieve_scripts",
                "Added column mail_groups.email",
                "Added index ix_mail_groups_email",
                "Claimed the addresses of the existing accounts and aliases",
                "Added column admins.totp_pending_secret",
                "Changed admins.username to compare exactly (utf8mb4_bin)",
                "Checked the names of 0 admin(s) against their canonical form (NFKC, lower-case)",
            ]
        add_domain(app, "example.com")
        account_id = add_account(app, "jane@example.com")
        with app.app_context():
            aliases.create_alias("sales@example.com", "jane@example.com")
            group = groups.save_group(None, "Team", None, "team@example.com")
            groups.add_to_group([account_id], group.id)
            get_engine().dispose()
    finally:
        drop_user(empty_database, user_url)
