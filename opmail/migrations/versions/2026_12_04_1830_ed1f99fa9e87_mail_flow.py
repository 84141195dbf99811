"""Mail flow: address claims, forwards, Sieve scripts, group addresses.

``mail_addresses`` holds every address that receives mail, claimed by one account, alias or group;
it is filled from the accounts and aliases that exist (an alias at an account's address is named:
the account keeps the address, which is where Postfix delivers). ``mail_sieve_scripts`` gets the
script of every active autoresponder, which Pigeonhole reads through its SQL dict.

Revision ID: ed1f99fa9e87
Revises: 56473bf69181
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.mysql import LONGTEXT

from opmail.migrations import steps
from opmail.sieve import SCRIPT_NAME, vacation_script

revision = "ed1f99fa9e87"
down_revision = "56473bf69181"

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")
LongText = sa.Text().with_variant(LONGTEXT(), "mysql", "mariadb")
TABLE_ARGS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def upgrade() -> None:
    steps.create_table(
        "mail_addresses",
        sa.Column("address", sa.String(254), nullable=False),
        sa.Column("domain_id", BigId, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("address", name="pk_mail_addresses"),
        sa.ForeignKeyConstraint(["domain_id"], ["mail_domains.id"], name="fk_mail_addresses_domain_id_mail_domains"),
        sa.Index("ix_mail_addresses_domain_id", "domain_id"),
        **TABLE_ARGS,
    )
    steps.create_table(
        "mail_forwards",
        sa.Column("id", BigId, nullable=False),
        sa.Column("account_id", BigId, nullable=False),
        sa.Column("destination_email", sa.String(254), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_mail_forwards"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["mail_accounts.id"], name="fk_mail_forwards_account_id_mail_accounts", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("account_id", "destination_email", name="uq_mail_forwards_account_id_destination_email"),
        **TABLE_ARGS,
    )
    steps.create_table(
        "mail_sieve_scripts",
        sa.Column("id", BigId, nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("script", LongText, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_mail_sieve_scripts"),
        sa.UniqueConstraint("email", "name", name="uq_mail_sieve_scripts_email_name"),
        sqlite_autoincrement=True,
        **TABLE_ARGS,
    )
    steps.add_column("mail_groups", sa.Column("email", sa.String(254)))
    steps.create_index("ix_mail_groups_email", "mail_groups", ["email"], unique=True)
    claim_existing_addresses()
    write_existing_scripts()


def claim_existing_addresses() -> None:
    connection = op.get_bind()
    if connection.execute(sa.text("SELECT 1 FROM mail_addresses LIMIT 1")).first():
        return
    connection.execute(
        sa.text("INSERT INTO mail_addresses (address, domain_id, kind) SELECT email, domain_id, 'account' FROM mail_accounts")
    )
    clashes = connection.scalars(
        sa.text(
            "SELECT DISTINCT alias_email FROM mail_aliases WHERE alias_email IN (SELECT address FROM mail_addresses)"
            " ORDER BY alias_email"
        )
    ).all()
    connection.execute(
        sa.text(
            "INSERT INTO mail_addresses (address, domain_id, kind)"
            " SELECT alias_email, MIN(domain_id), 'alias' FROM mail_aliases"
            " WHERE alias_email NOT IN (SELECT email FROM mail_accounts) GROUP BY alias_email"
        )
    )
    steps.report("Claimed the addresses of the existing accounts and aliases")
    for address in clashes:
        steps.report(
            f"{address} is an account and an alias: mail goes to the account. Delete the alias under Admin → Aliases."
        )


def write_existing_scripts() -> None:
    connection = op.get_bind()
    if connection.execute(sa.text("SELECT 1 FROM mail_sieve_scripts LIMIT 1")).first():
        return
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [
        {
            "email": row.email,
            "name": SCRIPT_NAME,
            "script": vacation_script(row.email, row.subject, row.body, row.starts_at, row.ends_at),
            "created_at": now,
        }
        for row in connection.execute(
            sa.text(
                "SELECT email, subject, body, starts_at, ends_at FROM mail_autoresponders WHERE is_active = 1"
            ).columns(starts_at=sa.DateTime, ends_at=sa.DateTime)
        )
    ]
    if rows:
        connection.execute(
            sa.text(
                "INSERT INTO mail_sieve_scripts (email, name, script, created_at)"
                " VALUES (:email, :name, :script, :created_at)"
            ),
            rows,
        )
        steps.report(f"Wrote the Sieve scripts of {len(rows)} active autoresponders")
