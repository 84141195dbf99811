"""admins.totp_pending_secret: the key being enrolled waits on the server until a code confirms it.

Revision ID: 3b7e4f0c2a91
Revises: ed1f99fa9e87
"""

import sqlalchemy as sa

from opmail.migrations import steps

revision = "3b7e4f0c2a91"
down_revision = "ed1f99fa9e87"


def upgrade() -> None:
    steps.add_column("admins", sa.Column("totp_pending_secret", sa.String(64)))
