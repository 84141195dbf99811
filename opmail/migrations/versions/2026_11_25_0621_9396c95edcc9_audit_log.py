"""admin_events: the audit log of what admins changed (opmail.audit).

On MariaDB ``targets`` and ``changes`` are LONGTEXT: TEXT stops at 64 KB, which one bulk action
outgrows at about 2,000 accounts. The release that made the table first used TEXT.

Revision ID: 9396c95edcc9
Revises: 724057a3003a
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.mysql import LONGTEXT

from opmail.migrations import steps

revision = "9396c95edcc9"
down_revision = "724057a3003a"

LongText = sa.Text().with_variant(LONGTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    steps.create_table(
        "admin_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("occurred_at", sa.DateTime, nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("targets", LongText, nullable=False),
        sa.Column("changes", LongText),
        sa.PrimaryKeyConstraint("id", name="pk_admin_events"),
        sa.Index("ix_admin_events_occurred_at", "occurred_at"),
        sa.Index("ix_admin_events_actor", "actor"),
        sa.Index("ix_admin_events_action", "action"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_ci",
    )
    if steps.dialect() == "sqlite":
        return
    for column in sa.inspect(op.get_bind()).get_columns("admin_events"):
        if column["name"] in ("targets", "changes") and not isinstance(column["type"], LONGTEXT):
            op.alter_column(
                "admin_events",
                column["name"],
                type_=LONGTEXT(),
                existing_type=column["type"],
                existing_nullable=column["nullable"],
            )
            steps.report(f"Changed column admin_events.{column['name']} to LONGTEXT")
