"""The accounts list's (deleted_at, email) and (domain_id, email) indexes.

They hand the list its rows already in order. The single-column indexes they start with only
slowed every write (a bulk delete of 10,000 accounts updates every index of each row) and go;
on MariaDB the foreign key on domain_id moves to its successor, hence the order.

Revision ID: 05e11a8b4310
Revises: 86f628cbe867
"""

from opmail.migrations import steps

revision = "05e11a8b4310"
down_revision = "86f628cbe867"


def upgrade() -> None:
    steps.create_index("ix_mail_accounts_deleted_at_email", "mail_accounts", ["deleted_at", "email"])
    steps.create_index("ix_mail_accounts_domain_id_email", "mail_accounts", ["domain_id", "email"])
    for column in ("deleted_at", "domain_id"):
        steps.drop_index(
            f"ix_mail_accounts_{column}", "mail_accounts", f"the ({column}, …) indexes cover it"
        )
