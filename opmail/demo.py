"""Demo data in bulk: many domains and accounts for ``make run`` demos and the benchmarks.

Rows go in through Core ``executemany`` in batches (one statement per batch and table, no ORM
objects), every account shares one password hash computed once, so a million accounts take minutes.
The demo domains are ``demoNNNNN.example`` (a reserved TLD): seeding refuses to run while any exists,
so a second run never mixes with or duplicates the first.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, insert, select

from .db import get_engine
from .models import MailAccount, MailAddress, MailDomain, MailQuotaUsage, utcnow

BATCH = 10_000
DEMO_SUFFIX = ".example"
DEMO_PREFIX = "demo"


class DemoExists(Exception):
    """The demo domains are already in the database."""

    def __init__(self, count: int) -> None:
        super().__init__(
            f"{count:,} demo domains ({DEMO_PREFIX}…{DEMO_SUFFIX}) already exist: nothing was added. "
            "Seed a fresh database instead (the demo data cannot be mixed or topped up)."
        )


@dataclass
class DemoReport:
    domains: int
    accounts: int


def demo_domain(number: int) -> str:
    return f"{DEMO_PREFIX}{number:05d}{DEMO_SUFFIX}"


def demo_domains_present() -> int:
    """How many demo domains the database already holds."""
    pattern = f"{DEMO_PREFIX}%{DEMO_SUFFIX}"
    with get_engine().connect() as connection:
        return connection.scalar(
            select(func.count(MailDomain.id)).where(MailDomain.domain.like(pattern))
        )


def seed_demo(
    accounts: int, domains: int, password_hash: str, progress: Callable[[int], None] = lambda n: None
) -> DemoReport:
    """Add ``domains`` demo domains with ``accounts`` accounts spread evenly over them.

    Accounts are ``user<N>@demo<D>.example``; about one in twenty is suspended, quotas and usage vary
    (deterministically) so the list's filters and sorts have something to show. ``progress`` is
    called with the number of accounts stored after each batch.
    """
    present = demo_domains_present()
    if present:
        raise DemoExists(present)
    now = utcnow()
    names = [demo_domain(number) for number in range(1, domains + 1)]
    engine = get_engine()
    with engine.begin() as connection:
        for start in range(0, domains, BATCH):
            connection.execute(
                insert(MailDomain),
                [
                    {"domain": name, "is_active": True, "created_at": now, "updated_at": now}
                    for name in names[start : start + BATCH]
                ],
            )
        ids = dict(
            connection.execute(
                select(MailDomain.domain, MailDomain.id).where(MailDomain.domain.in_(names))
            ).all()
        )
    domain_ids = [ids[name] for name in names]
    # Seeded, not secret: the same data for the same size, so benchmark runs compare.
    chance = random.Random(accounts)  # noqa: S311
    quotas = (0, 1024, 2048, 5120, 10240)
    for start in range(0, accounts, BATCH):
        account_rows, usage_rows = [], []
        for number in range(start + 1, min(start + BATCH, accounts) + 1):
            slot = number % domains
            email = f"user{number}@{names[slot]}"
            account_rows.append(
                {
                    "domain_id": domain_ids[slot],
                    "email": email,
                    "password": password_hash,
                    "quota_mb": quotas[number % len(quotas)],
                    "is_active": number % 20 != 0,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            usage_rows.append(
                {
                    "email": email,
                    "bytes": chance.randrange(0, 3 << 30),
                    "messages": chance.randrange(5000),
                    "updated_at": now,
                }
            )
        with engine.begin() as connection:
            # Usage first: each account then picks its figure up in its own insert trigger, instead
            # of every usage row's trigger updating its account again (twice the index writes).
            connection.execute(insert(MailQuotaUsage), usage_rows)
            connection.execute(
                insert(MailAddress),
                [{"address": row["email"], "domain_id": row["domain_id"], "kind": "account"} for row in account_rows],
            )
            connection.execute(insert(MailAccount), account_rows)
        progress(len(account_rows))
    if engine.dialect.name in ("mysql", "mariadb"):
        # InnoDB refreshes index statistics late after a bulk load; until then MariaDB may plan the
        # accounts list through the wrong index.
        with engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE TABLE mail_domains, mail_accounts, mail_quota_usage")
    return DemoReport(domains=domains, accounts=accounts)
