"""admins.username: one canonical form (NFKC, lower-case), compared in binary.

Under MariaDB's utf8mb4_unicode_ci ``BOB``, ``bób`` and ``bob`` + a zero-width space all matched
``bob`` at login. The column now compares byte for byte (utf8mb4_bin; SQLite always does), and the
names stored are brought to their canonical form, so the login (which canonicalises what is typed)
finds them. A name that cannot be brought there (it would clash with another admin's, or it holds an
invisible character) is left as it is and named in the printout, never merged.

Revision ID: a7c3e91d5b20
Revises: 3b7e4f0c2a91
"""

import unicodedata

import sqlalchemy as sa
from alembic import op

from opmail.migrations import steps

revision = "a7c3e91d5b20"
down_revision = "3b7e4f0c2a91"


def _canonical(name: str) -> str | None:
    """Frozen copy of addresses.normalize_admin_name's form; None where it would refuse the name."""
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in name):
        return None
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name.strip()).lower())


def upgrade() -> None:
    bind = op.get_bind()
    if steps.dialect() == "mysql":
        collation = bind.exec_driver_sql(
            "SELECT COLLATION_NAME FROM information_schema.COLUMNS"
            " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'admins' AND COLUMN_NAME = 'username'"
        ).scalar()
        if collation != "utf8mb4_bin":
            op.execute("ALTER TABLE admins MODIFY username VARCHAR(64) COLLATE utf8mb4_bin NOT NULL")
            steps.report("Changed admins.username to compare exactly (utf8mb4_bin)")
    admins = sa.table("admins", sa.column("id"), sa.column("username"))
    rows = bind.execute(sa.select(admins.c.id, admins.c.username).order_by(admins.c.id)).all()
    taken = {row.username for row in rows}
    steps.report(f"Checked the names of {len(rows)} admin(s) against their canonical form (NFKC, lower-case)")
    for row in rows:
        name = _canonical(row.username)
        if name == row.username:
            continue
        if name is None or not name or name in taken:
            why = "it holds an invisible character" if not name else f"admin {name!r} exists"
            steps.report(
                f"Left admin {row.username!r} as it is ({why}): it cannot log in until renamed or "
                f"deleted by hand"
            )
            continue
        bind.execute(sa.update(admins).where(admins.c.id == row.id).values(username=name))
        taken.discard(row.username)
        taken.add(name)
        steps.report(f"Renamed admin {row.username!r} to {name!r} (names are lower-case now)")
