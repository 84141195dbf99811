"""mail_domains.unicode_domain: an IDN's Unicode form, so Dovecot and Postfix find it by index.

A login as ``anna@bücher.example`` (the address is stored ``anna@xn--bcher-kva.example``) is looked
up through this column; NULL for a domain that is ASCII in both forms. Filled here for the domains
that exist.

Revision ID: c5d2f8a41e67
Revises: a7c3e91d5b20
"""

import idna
import sqlalchemy as sa
from alembic import op

from opmail.migrations import steps

revision = "c5d2f8a41e67"
down_revision = "a7c3e91d5b20"


def _unicode(domain: str) -> str | None:
    """Frozen copy of addresses.unicode_domain."""
    if "xn--" not in domain:
        return None
    try:
        shown = idna.decode(domain)
    except (idna.IDNAError, UnicodeError):
        return None
    return shown if shown != domain else None


def upgrade() -> None:
    steps.add_column("mail_domains", sa.Column("unicode_domain", sa.String(253)))
    steps.create_index("ix_mail_domains_unicode_domain", "mail_domains", ["unicode_domain"])
    bind = op.get_bind()
    domains = sa.table("mail_domains", sa.column("id"), sa.column("domain"), sa.column("unicode_domain"))
    filled = 0
    for row in bind.execute(
        sa.select(domains.c.id, domains.c.domain).where(
            domains.c.domain.like("%xn--%"), domains.c.unicode_domain.is_(None)
        )
    ).all():
        shown = _unicode(row.domain)
        if shown:
            bind.execute(sa.update(domains).where(domains.c.id == row.id).values(unicode_domain=shown))
            filled += 1
    if filled:
        steps.report(f"Filled mail_domains.unicode_domain for {filled} international domain(s)")
