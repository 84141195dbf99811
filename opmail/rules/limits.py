"""Per-domain limits and defaults: how many mailboxes and aliases a domain may have, how much quota
its mailboxes may add up to, and the quota a new mailbox gets when none is given.

NULL is no limit (or, for the default quota, the server's: 0 = unlimited). Every rule that adds
to a domain with limits locks its row first (``limits_to_check``, ``lock_domain(s)``) and checks
inside the same transaction: the row stays locked until the commit, so two admins (or an admin and
the Panel) cannot both take the last place. A domain without limits is not held up. The counts are locking reads (share mode): on MariaDB a plain read would answer from the
snapshot the transaction took before it waited for the lock, missing what the other writer added.
The checks take a ``Session`` or a ``Connection`` (the webhook's): both execute statements.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import case, func, select, update

from .. import audit
from ..addresses import InvalidInput, display_domain
from ..db import retried
from ..models import MailAccount, MailAddress, MailDomain
from .core import ACCOUNT, check_quota, transaction

LIMIT_COLUMNS = ("max_accounts", "max_aliases", "total_quota_mb", "default_quota_mb")
# The limits that need the domain locked to be checked (the default quota is only read).
COUNTED = ("max_accounts", "max_aliases", "total_quota_mb")


@dataclass(frozen=True)
class DomainLimits:
    """A domain's limits as stored (None = no limit / the server default)."""

    domain_id: int
    domain: str
    max_accounts: int | None = None
    max_aliases: int | None = None
    total_quota_mb: int | None = None
    default_quota_mb: int | None = None

    @property
    def limited(self) -> bool:
        return any(getattr(self, name) is not None for name in COUNTED)

    def quota_for_new(self, quota_mb: int | None) -> int:
        """The quota a new mailbox gets: the one given, else the domain's default, else 0."""
        if quota_mb is not None:
            return quota_mb
        return self.default_quota_mb or 0


class OverLimit(InvalidInput):
    """A change that would take a domain past one of its limits; ``limit`` names the column."""

    def __init__(self, limit: str, message: str, field: str | None = None) -> None:
        super().__init__(f"Over the domain's limit: {message}", field)
        self.limit = limit


_SELECT_LIMITS = select(MailDomain.id, MailDomain.domain, *(getattr(MailDomain, n) for n in LIMIT_COLUMNS))


def lock_domains(db, domain_ids: Iterable[int]) -> dict[int, DomainLimits]:
    """Hold the domains' rows until the commit and return their limits as committed now (a gone
    domain is missing). Two statements, whatever their number; rows locked in id order.

    An UPDATE that changes nothing (``updated_at`` too is set to itself), then FOR UPDATE: SQLite
    ignores FOR UPDATE and reads outside a write transaction, while the UPDATE starts one (no other
    writer until the commit); on MariaDB both take the rows' write locks, and the locking read sees
    the latest committed limits.
    """
    domain_ids = sorted(set(domain_ids))
    if not domain_ids:
        return {}
    db.execute(
        update(MailDomain)
        .where(MailDomain.id.in_(domain_ids))
        .values(max_accounts=MailDomain.max_accounts, updated_at=MailDomain.updated_at)
        .execution_options(synchronize_session=False)
    )
    locked = db.execute(_SELECT_LIMITS.where(MailDomain.id.in_(domain_ids)).order_by(MailDomain.id).with_for_update())
    return {row.id: DomainLimits(*row) for row in locked}


def read_limits_of(db, domain_ids: list[int]) -> list[DomainLimits]:
    """The limits of several domains in one statement, not locked (an import's preview)."""
    return [DomainLimits(*row) for row in db.execute(_SELECT_LIMITS.where(MailDomain.id.in_(domain_ids)))]


def lock_domain(db, domain_id: int) -> DomainLimits | None:
    """``lock_domains`` for one domain (None: gone)."""
    return lock_domains(db, [domain_id]).get(domain_id)


def limits_to_check(db, domain_id: int) -> DomainLimits | None:
    """The domain's limits, its row locked when it has any to count (None: no such domain).

    A domain without limits is not locked: adding to it stays as concurrent as before (the
    address claims' primary key settles races there), and its default quota needs no lock. A limit
    an admin sets meanwhile applies from the next change on.
    """
    limits = next(iter(read_limits_of(db, [domain_id])), None)
    return lock_domain(db, domain_id) if limits is not None and limits.limited else limits


def _accounts_in(db, domain_id: int, leaving_out: Iterable[int] = ()) -> tuple[int, int]:
    """(mailboxes, sum of their quotas in MB) of the domain's accounts that are not deleted."""
    query = select(func.count(), func.coalesce(func.sum(MailAccount.quota_mb), 0)).where(
        MailAccount.domain_id == domain_id, MailAccount.deleted_at.is_(None)
    )
    leaving_out = list(leaving_out)
    if leaving_out:
        query = query.where(MailAccount.id.not_in(leaving_out))
    count, total = db.execute(query.with_for_update(read=True)).one()
    return int(count), int(total)


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def check_new_accounts(
    db,
    limits: DomainLimits,
    quotas: list[int],
    replacing: Iterable[int] = (),
    field: str = "email",
    replaced_mb: int | None = None,
) -> None:
    """Refuse adding mailboxes with ``quotas`` (MB each, 0 = unlimited) to a locked domain past its
    limits. ``replacing``: ids of its accounts whose quotas these replace (not counted twice), which
    had ``replaced_mb`` together: a change that does not grow the total is never refused."""
    if not limits.limited:
        return
    replacing = list(replacing)
    count, total = _accounts_in(db, limits.domain_id, replacing)
    name = display_domain(limits.domain)
    adding = len(quotas) - len(replacing)
    if limits.max_accounts is not None and adding > 0 and count + len(quotas) > limits.max_accounts:
        raise OverLimit(
            "max_accounts",
            f"{name} may have at most {_plural(limits.max_accounts, 'mailbox', 'mailboxes')} and has"
            f" {count}{f'; this adds {len(quotas)}' if len(quotas) > 1 else ''}. Raise the limit on the"
            " domain's page, or delete a mailbox first.",
            field,
        )
    _check_total_quota(limits, total, quotas, before=None if replaced_mb is None else total + replaced_mb)


def check_quota_change(
    db, accounts_by_domain: dict[int, list[int]], quota_mb: int, written_before: dict[int, int] | None = None
) -> None:
    """Refuse giving the accounts (domain id → account ids) ``quota_mb`` each past a domain's total
    quota. Locks the domains; one statement more when any has a total quota, whatever their number.
    ``written_before``: when the new quota is written already, the accounts' old quotas added up
    per domain (else they are read)."""
    limits = lock_domains(db, accounts_by_domain)
    limited = sorted(d for d, lim in limits.items() if lim.total_quota_mb is not None)
    if not limited:
        return
    changed = [a for d in limited for a in accounts_by_domain[d]]
    is_changed = MailAccount.id.in_(changed)
    # The others' quotas, and the changed accounts' own before the change (a decrease always passes).
    sums = {
        domain_id: (int(others), int(before))
        for domain_id, others, before in db.execute(
            select(
                MailAccount.domain_id,
                func.coalesce(func.sum(case((is_changed, 0), else_=MailAccount.quota_mb)), 0),
                func.coalesce(func.sum(case((is_changed, MailAccount.quota_mb), else_=0)), 0),
            )
            .where(MailAccount.domain_id.in_(limited), MailAccount.deleted_at.is_(None))
            .group_by(MailAccount.domain_id)
            .with_for_update(read=True)
        )
    }
    for domain_id in limited:
        quotas = [quota_mb] * len(accounts_by_domain[domain_id])
        others, before = sums.get(domain_id, (0, 0))
        if written_before is not None:
            before = written_before.get(domain_id, 0)
        _check_total_quota(limits[domain_id], others, quotas, "quota_mb", before=others + before)


def check_restored_accounts(db, restored: dict[int, list[int]]) -> None:
    """Refuse bringing back soft-deleted mailboxes (domain id → their quotas) past a domain's
    ``max_accounts`` or total quota. Locks the domains; one statement more when any is limited."""
    limits = lock_domains(db, restored)
    limited = sorted(d for d, lim in limits.items() if lim.limited)
    if not limited:
        return
    live = {
        domain_id: (int(count), int(total))
        for domain_id, count, total in db.execute(
            select(MailAccount.domain_id, func.count(), func.coalesce(func.sum(MailAccount.quota_mb), 0))
            .where(MailAccount.domain_id.in_(limited), MailAccount.deleted_at.is_(None))
            .group_by(MailAccount.domain_id)
            .with_for_update(read=True)
        )
    }
    for domain_id in limited:
        domain, quotas = limits[domain_id], restored[domain_id]
        count, total = live.get(domain_id, (0, 0))
        if domain.max_accounts is not None and count + len(quotas) > domain.max_accounts:
            raise OverLimit(
                "max_accounts",
                f"{display_domain(domain.domain)} may have at most"
                f" {_plural(domain.max_accounts, 'mailbox', 'mailboxes')} and has {count}; restoring"
                f" {len(quotas)} would pass it.",
            )
        _check_total_quota(domain, total, quotas)


def _check_total_quota(
    limits: DomainLimits, others: int, quotas: list[int], field: str = "quota_mb", before: int | None = None
) -> None:
    """``others`` MB given out besides ``quotas``; ``before``: the total before this change, if it
    replaces quotas (a change that does not grow the total passes, even over a lowered limit)."""
    if limits.total_quota_mb is None or not quotas:
        return
    name = display_domain(limits.domain)
    if 0 in quotas:
        raise OverLimit(
            "total_quota_mb",
            f"the mailboxes of {name} may use {limits.total_quota_mb:,} MB together, so each needs a"
            " quota: 0 (unlimited) is not allowed there.",
            field,
        )
    if others + sum(quotas) > limits.total_quota_mb and (before is None or others + sum(quotas) > before):
        raise OverLimit(
            "total_quota_mb",
            f"the mailboxes of {name} may use {limits.total_quota_mb:,} MB together; {others:,} MB are"
            f" given out already and this asks for {sum(quotas):,} MB more.",
            field,
        )


def check_new_alias(db, limits: DomainLimits, field: str = "alias_email") -> None:
    """Refuse one more alias or group address on a (locked) domain at its ``max_aliases``."""
    if limits.max_aliases is None:
        return
    used = db.scalar(
        select(func.count())
        .where(MailAddress.domain_id == limits.domain_id, MailAddress.kind != ACCOUNT)
        .with_for_update(read=True)
    )
    if used + 1 > limits.max_aliases:
        raise OverLimit(
            "max_aliases",
            f"{display_domain(limits.domain)} may have at most"
            f" {_plural(limits.max_aliases, 'alias', 'aliases')} (groups' addresses count) and has {used}."
            " Raise the limit on the domain's page, or delete one first.",
            field,
        )


def parse_limit(text: str | None, field: str) -> int | None:
    """A limit typed into the domain's page: blank = no limit, else a whole number (0 allowed)."""
    text = (text or "").strip().replace(",", "")
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 8:
        raise InvalidInput("Enter a whole number, or leave it empty for no limit.", field)
    return int(text)


@retried
def set_domain_limits(
    domain_id: int,
    *,
    max_accounts: int | None,
    max_aliases: int | None,
    total_quota_mb: int | None,
    default_quota_mb: int | None,
) -> DomainLimits:
    """Save a domain's limits and default quota. A limit below what the domain uses is allowed (it
    stops growth; nothing is removed); the default quota must itself fit a total quota."""
    for name, value in (("max_accounts", max_accounts), ("max_aliases", max_aliases), ("total_quota_mb", total_quota_mb)):
        if value is not None and not 0 <= value <= 10_000_000:
            raise InvalidInput("Enter a whole number up to 10,000,000, or leave it empty for no limit.", name)
    if default_quota_mb is not None:
        try:
            check_quota(default_quota_mb)
        except InvalidInput as error:
            raise InvalidInput(error.message, "default_quota_mb") from None
    if total_quota_mb is not None and default_quota_mb is not None:
        if default_quota_mb == 0 or default_quota_mb > total_quota_mb:
            raise InvalidInput(
                f"With a total quota of {total_quota_mb:,} MB the default quota must be from 1 to"
                f" {total_quota_mb:,} MB (or empty: then each new mailbox needs a quota).",
                "default_quota_mb",
            )
    new = {
        "max_accounts": max_accounts,
        "max_aliases": max_aliases,
        "total_quota_mb": total_quota_mb,
        "default_quota_mb": default_quota_mb,
    }
    with transaction() as db:
        old = lock_domain(db, domain_id)
        if old is None:
            raise InvalidInput("That domain no longer exists.")
        changes = {
            name: [getattr(old, name), value] for name, value in new.items() if getattr(old, name) != value
        }
        if changes:
            db.execute(
                update(MailDomain)
                .where(MailDomain.id == domain_id)
                .values(**new)
                .execution_options(synchronize_session=False)
            )
            audit.record(db, "domain.limits", [old.domain], {old.domain: changes})
    return DomainLimits(domain_id, old.domain, **new)
