"""mail_quota_usage.updated_at is stamped by the database.

Dovecot's dict writes ``bytes`` and ``messages`` only, so the database sets ``updated_at`` on
insert (a default) and on update (MariaDB's ON UPDATE, a trigger on SQLite). The release that
brought this made it only in new tables: older usage tables get it here.

Revision ID: 86f628cbe867
Revises: d6c08e5580d9
"""

import sqlalchemy as sa
from alembic import op

from opmail.migrations import steps

revision = "86f628cbe867"
down_revision = "d6c08e5580d9"

STAMP_ON_UPDATE = (
    "CREATE TRIGGER mail_quota_usage_stamp "
    "AFTER UPDATE OF bytes, messages ON mail_quota_usage "
    "WHEN NEW.updated_at IS OLD.updated_at BEGIN "
    "UPDATE mail_quota_usage SET updated_at = CURRENT_TIMESTAMP "
    "WHERE email = NEW.email; END"
)


def upgrade() -> None:
    if steps.dialect() == "sqlite":
        upgrade_sqlite()
        return
    extra = op.get_bind().execute(
        sa.text(
            "SELECT extra FROM information_schema.columns WHERE table_schema = DATABASE() "
            "AND table_name = 'mail_quota_usage' AND column_name = 'updated_at'"
        )
    ).scalar_one()
    if "on update" not in extra.lower():
        op.execute(
            "ALTER TABLE mail_quota_usage MODIFY updated_at DATETIME NULL "
            "DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP"
        )
        steps.report("Changed column mail_quota_usage.updated_at: stamped by the database")


def upgrade_sqlite() -> None:
    columns = sa.inspect(op.get_bind()).get_columns("mail_quota_usage")
    if next(column for column in columns if column["name"] == "updated_at")["default"] is None:
        # SQLite cannot change a column's default: the table is copied into a new one. The
        # triggers that name it (a later release's, in a database that ran its init-db) would
        # stop the copy's rename: they step aside and come back as they were.
        triggers = op.get_bind().execute(
            sa.text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                "AND sql LIKE '%mail_quota_usage%'"
            )
        ).all()
        for name, _sql in triggers:
            op.execute(f"DROP TRIGGER {name}")
        with op.batch_alter_table("mail_quota_usage", recreate="always") as batch:
            batch.alter_column(
                "updated_at",
                existing_type=sa.DateTime,
                existing_nullable=True,
                server_default=sa.func.current_timestamp(),
            )
        for _name, sql in triggers:
            op.execute(sql)
        steps.report("Changed column mail_quota_usage.updated_at: stamped by the database")
    steps.create_trigger("mail_quota_usage_stamp", STAMP_ON_UPDATE)
