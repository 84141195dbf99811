"""admins.totp_recovery_codes: the hashes of an admin's unused 2FA recovery codes.

Revision ID: e72b437e032f
Revises: 9396c95edcc9
"""

import sqlalchemy as sa

from opmail.migrations import steps

revision = "e72b437e032f"
down_revision = "9396c95edcc9"


def upgrade() -> None:
    steps.add_column("admins", sa.Column("totp_recovery_codes", sa.Text))
