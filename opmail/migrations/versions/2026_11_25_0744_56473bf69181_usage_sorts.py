"""mail_accounts.used_bytes and usage_share, their indexes and triggers: the usage sorts.

``used_bytes`` is a copy of mail_quota_usage.bytes kept by triggers (Dovecot writes only that
table), ``usage_share`` the share of the quota in use, stored so it can be indexed (VIRTUAL on
SQLite, which cannot add a stored one to a table). When the column or a trigger had to be added,
the copy is brought up to date from what Dovecot recorded.

Revision ID: 56473bf69181
Revises: e72b437e032f
"""

import sqlalchemy as sa
from alembic import op

from opmail.migrations import steps

revision = "56473bf69181"
down_revision = "e72b437e032f"

# MariaDB cannot update the table a trigger fires on, hence BEFORE INSERT … SET NEW there; SQLite
# cannot assign NEW, hence an AFTER INSERT update.
COPY = "UPDATE mail_accounts SET used_bytes = {} WHERE email = {}"
USAGE_OF_NEW = "COALESCE((SELECT bytes FROM mail_quota_usage WHERE email = NEW.email), 0)"
ON_USAGE = "CREATE TRIGGER mail_quota_usage_copy_{} AFTER {} ON mail_quota_usage"
ON_ACCOUNT = "CREATE TRIGGER mail_accounts_usage_on_insert {} INSERT ON mail_accounts"
TRIGGERS = {
    "mysql": {
        "mail_quota_usage_copy_insert": f"{ON_USAGE.format('insert', 'INSERT')} FOR EACH ROW "
        f"{COPY.format('NEW.bytes', 'NEW.email')}",
        "mail_quota_usage_copy_update": f"{ON_USAGE.format('update', 'UPDATE')} FOR EACH ROW "
        f"{COPY.format('NEW.bytes', 'NEW.email')}",
        "mail_quota_usage_copy_delete": f"{ON_USAGE.format('delete', 'DELETE')} FOR EACH ROW "
        f"{COPY.format('0', 'OLD.email')}",
        "mail_accounts_usage_on_insert": f"{ON_ACCOUNT.format('BEFORE')} FOR EACH ROW "
        f"SET NEW.used_bytes = {USAGE_OF_NEW}",
    },
    "sqlite": {
        "mail_quota_usage_copy_insert": f"{ON_USAGE.format('insert', 'INSERT')} BEGIN "
        f"{COPY.format('NEW.bytes', 'NEW.email')}; END",
        "mail_quota_usage_copy_update": f"{ON_USAGE.format('update', 'UPDATE OF bytes')} BEGIN "
        f"{COPY.format('NEW.bytes', 'NEW.email')}; END",
        "mail_quota_usage_copy_delete": f"{ON_USAGE.format('delete', 'DELETE')} BEGIN "
        f"{COPY.format('0', 'OLD.email')}; END",
        "mail_accounts_usage_on_insert": f"{ON_ACCOUNT.format('AFTER')} BEGIN "  # noqa: S608
        f"UPDATE mail_accounts SET used_bytes = {USAGE_OF_NEW} WHERE id = NEW.id; END",
    },
}


def upgrade() -> None:
    had_used_bytes = steps.has_column("mail_accounts", "used_bytes")
    steps.add_column(
        "mail_accounts",
        sa.Column("used_bytes", sa.BigInteger, nullable=False, server_default="0"),
    )
    steps.add_column(
        "mail_accounts",
        sa.Column(
            "usage_share",
            sa.Double,
            sa.Computed(
                "CASE WHEN quota_mb > 0 THEN CAST(used_bytes AS DOUBLE) / (quota_mb * 1048576) END",
                persisted=True,
            ),
        ),
    )
    for column in ("used_bytes", "usage_share"):
        for first in ("deleted_at", "domain_id"):
            steps.create_index(
                f"ix_mail_accounts_{first}_{column}", "mail_accounts", [first, column]
            )
    added_triggers = [
        steps.create_trigger(name, sql) for name, sql in TRIGGERS[steps.dialect()].items()
    ]
    if not had_used_bytes or any(added_triggers):
        op.execute(
            "UPDATE mail_accounts SET used_bytes = COALESCE("
            "(SELECT bytes FROM mail_quota_usage WHERE mail_quota_usage.email = mail_accounts.email)"
            ", 0)"
        )
        steps.report("Copied the usage Dovecot recorded into mail_accounts.used_bytes")
