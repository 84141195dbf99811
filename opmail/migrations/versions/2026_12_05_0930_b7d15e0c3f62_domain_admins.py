"""Domain admins: admins.role and require_2fa, the domains each domain admin manages, and the
domains each audit log entry touched (a domain admin reads the log of its domains only).

Every existing admin stays a server admin. Entries written before this revision name no domain:
a server admin still sees them all, a domain admin none of them.

Revision ID: b7d15e0c3f62
Revises: a4c9e2d71b58
"""

import sqlalchemy as sa

from opmail.migrations import steps

revision = "b7d15e0c3f62"
down_revision = "a4c9e2d71b58"

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")
TABLE = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def upgrade() -> None:
    steps.add_column("admins", sa.Column("role", sa.String(16), nullable=False, server_default="server"))
    steps.add_column("admins", sa.Column("require_2fa", sa.Boolean, nullable=False, server_default=sa.false()))
    steps.create_table(
        "admin_domains",
        sa.Column("admin_id", BigId, nullable=False),
        sa.Column("domain_id", BigId, nullable=False),
        sa.PrimaryKeyConstraint("admin_id", "domain_id", name="pk_admin_domains"),
        sa.ForeignKeyConstraint(
            ["admin_id"], ["admins.id"], name="fk_admin_domains_admin_id_admins", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["domain_id"], ["mail_domains.id"], name="fk_admin_domains_domain_id_mail_domains", ondelete="CASCADE"
        ),
        sa.Index("ix_admin_domains_domain_id", "domain_id"),
        **TABLE,
    )
    steps.create_table(
        "admin_event_domains",
        sa.Column("domain_id", BigId, nullable=False),
        sa.Column("event_id", BigId, nullable=False),
        sa.PrimaryKeyConstraint("domain_id", "event_id", name="pk_admin_event_domains"),
        sa.ForeignKeyConstraint(
            ["event_id"], ["admin_events.id"], name="fk_admin_event_domains_event_id_admin_events", ondelete="CASCADE"
        ),
        sa.Index("ix_admin_event_domains_event_id", "event_id"),
        **TABLE,
    )
