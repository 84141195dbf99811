"""admins.failed_logins and admins.locked_until: the lock after wrong passwords (opmail.auth).

Revision ID: c1d323f9fd40
Revises: 05e11a8b4310
"""

import sqlalchemy as sa

from opmail.migrations import steps

revision = "c1d323f9fd40"
down_revision = "05e11a8b4310"


def upgrade() -> None:
    steps.add_column(
        "admins", sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0")
    )
    steps.add_column("admins", sa.Column("locked_until", sa.DateTime))
