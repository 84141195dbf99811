"""mail_domains: per-domain limits and defaults (max accounts, max aliases, total quota, default quota).

Revision ID: a4c9e2d71b58
Revises: c5d2f8a41e67
"""

import sqlalchemy as sa
from sqlalchemy.dialects.mysql import INTEGER

from opmail.migrations import steps

revision = "a4c9e2d71b58"
down_revision = "c5d2f8a41e67"

UnsignedInt = sa.Integer().with_variant(INTEGER(unsigned=True), "mysql", "mariadb")


def upgrade() -> None:
    # NULL: no limit (or the server default), what every existing domain had.
    for name in ("max_accounts", "max_aliases", "total_quota_mb", "default_quota_mb"):
        steps.add_column("mail_domains", sa.Column(name, UnsignedInt))
