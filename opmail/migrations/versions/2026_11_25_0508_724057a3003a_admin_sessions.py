"""admins.session_version: logging out ends every copy of the session cookie.

Revision ID: 724057a3003a
Revises: c1d323f9fd40
"""

import sqlalchemy as sa

from opmail.migrations import steps

revision = "724057a3003a"
down_revision = "c1d323f9fd40"


def upgrade() -> None:
    steps.add_column(
        "admins", sa.Column("session_version", sa.Integer, nullable=False, server_default="0")
    )
