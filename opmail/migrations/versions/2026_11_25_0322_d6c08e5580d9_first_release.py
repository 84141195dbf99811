"""The tables of opmail's first release.

The base every later revision builds on. A database from a release before versioning may lack
some of these tables (the product's own database has only the mail tables): those are created,
the others left as they are.

Revision ID: d6c08e5580d9
Revises:
"""

import sqlalchemy as sa
from sqlalchemy.dialects.mysql import INTEGER as MYSQL_INTEGER

from opmail.migrations import steps

revision = "d6c08e5580d9"
down_revision = None

# As the first release's models wrote them (frozen here: later model changes are revisions).
BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")
UnsignedInt = sa.Integer().with_variant(MYSQL_INTEGER(unsigned=True), "mysql", "mariadb")
MYSQL = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def id_column() -> sa.Column:
    return sa.Column("id", BigId, primary_key=True)


def timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    ]


def is_active() -> sa.Column:
    return sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true())


def upgrade() -> None:
    steps.create_table(
        "mail_domains",
        id_column(),
        sa.Column("domain", sa.String(253), nullable=False),
        is_active(),
        *timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_mail_domains"),
        sa.UniqueConstraint("domain", name="uq_mail_domains_domain"),
        sa.Index("ix_mail_domains_is_active", "is_active"),
        **MYSQL,
    )
    steps.create_table(
        "mail_accounts",
        id_column(),
        sa.Column("domain_id", BigId, nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("password", sa.String(255), nullable=False),
        sa.Column("display_name", sa.String(255)),
        sa.Column("quota_mb", UnsignedInt, nullable=False, server_default="0"),
        is_active(),
        sa.Column("deleted_at", sa.DateTime),
        sa.Column("last_synced_at", sa.DateTime),
        *timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_mail_accounts"),
        sa.ForeignKeyConstraint(
            ["domain_id"], ["mail_domains.id"], name="fk_mail_accounts_domain_id_mail_domains"
        ),
        sa.UniqueConstraint("email", name="uq_mail_accounts_email"),
        sa.Index("ix_mail_accounts_domain_id", "domain_id"),
        sa.Index("ix_mail_accounts_quota_mb", "quota_mb"),
        sa.Index("ix_mail_accounts_is_active", "is_active"),
        sa.Index("ix_mail_accounts_deleted_at", "deleted_at"),
        sa.Index("ix_mail_accounts_last_synced_at", "last_synced_at"),
        **MYSQL,
    )
    steps.create_table(
        "mail_aliases",
        id_column(),
        sa.Column("domain_id", BigId, nullable=False),
        sa.Column("alias_email", sa.String(254), nullable=False),
        sa.Column("destination_email", sa.String(254), nullable=False),
        is_active(),
        *timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_mail_aliases"),
        sa.UniqueConstraint(
            "alias_email",
            "destination_email",
            name="uq_mail_aliases_alias_email_destination_email",
        ),
        sa.ForeignKeyConstraint(
            ["domain_id"], ["mail_domains.id"], name="fk_mail_aliases_domain_id_mail_domains"
        ),
        sa.Index("ix_mail_aliases_domain_id", "domain_id"),
        sa.Index("ix_mail_aliases_alias_email", "alias_email"),
        sa.Index("ix_mail_aliases_destination_email", "destination_email"),
        **MYSQL,
    )
    steps.create_table(
        "mail_autoresponders",
        id_column(),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("starts_at", sa.DateTime),
        sa.Column("ends_at", sa.DateTime),
        is_active(),
        *timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_mail_autoresponders"),
        sa.Index("ix_mail_autoresponders_email", "email"),
        **MYSQL,
    )
    steps.create_table(
        "mail_groups",
        id_column(),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text),
        *timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_mail_groups"),
        sa.UniqueConstraint("name", name="uq_mail_groups_name"),
        **MYSQL,
    )
    steps.create_table(
        "mail_group_members",
        id_column(),
        sa.Column("group_id", BigId, nullable=False),
        sa.Column("account_id", BigId, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_mail_group_members"),
        sa.UniqueConstraint(
            "group_id", "account_id", name="uq_mail_group_members_group_id_account_id"
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["mail_groups.id"],
            name="fk_mail_group_members_group_id_mail_groups",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["mail_accounts.id"],
            name="fk_mail_group_members_account_id_mail_accounts",
            ondelete="CASCADE",
        ),
        sa.Index("ix_mail_group_members_account_id", "account_id"),
        **MYSQL,
    )
    steps.create_table(
        "user_two_factor",
        id_column(),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("secret", sa.String(255), nullable=False),
        sa.Column("recovery_codes", sa.Text),
        sa.Column("enabled_at", sa.DateTime),
        *timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_user_two_factor"),
        sa.UniqueConstraint("email", name="uq_user_two_factor_email"),
        **MYSQL,
    )
    steps.create_table(
        "mail_quota_usage",
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("messages", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime),
        sa.PrimaryKeyConstraint("email", name="pk_mail_quota_usage"),
        sa.Index("ix_mail_quota_usage_bytes", "bytes"),
        **MYSQL,
    )
    steps.create_table(
        "admins",
        id_column(),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("password", sa.String(255), nullable=False),
        sa.Column("totp_secret", sa.String(64)),
        sa.Column("totp_last_step", sa.BigInteger),
        sa.Column("last_login_at", sa.DateTime),
        *timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_admins"),
        sa.UniqueConstraint("username", name="uq_admins_username"),
        **MYSQL,
    )
    steps.create_table(
        "sync_events",
        id_column(),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("received_at", sa.DateTime, nullable=False),
        sa.Column("remote_addr", sa.String(45)),
        sa.PrimaryKeyConstraint("id", name="pk_sync_events"),
        sa.Index("ix_sync_events_action", "action"),
        sa.Index("ix_sync_events_email", "email"),
        sa.Index("ix_sync_events_outcome", "outcome"),
        sa.Index("ix_sync_events_received_at", "received_at"),
        **MYSQL,
    )
