"""Domains: add, enable or disable, delete with everything on them."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select, update

from .. import audit
from ..addresses import InvalidInput, display_domain, normalize_domain
from ..db import retried
from ..models import MailAccount, MailAddress, MailAlias, MailDomain, MailGroup, utcnow
from .accounts import DeletionReport, delete_accounts_in
from .core import ENABLED, GROUP, BulkResult, for_field, split_ids, transaction
from .limits import lock_domains


@retried
def create_domain(name: str) -> MailDomain:
    """Add a domain (validated, lower-case, IDNA)."""
    domain_name = for_field(normalize_domain, name.strip(), "domain")
    with transaction() as db:
        if db.scalar(select(MailDomain.id).where(MailDomain.domain == domain_name)):
            raise InvalidInput(f"The domain {display_domain(domain_name)} already exists.", "domain")
        domain = MailDomain(domain=domain_name)
        db.add(domain)
        audit.record(db, "domain.create", [domain_name])
    return domain


@retried
def set_domains_active(raw_ids: Iterable[object], active: bool) -> BulkResult:
    """Enable or disable domains; a disabled domain's accounts fail login at once."""
    ids, junk = split_ids(raw_ids)
    with transaction() as db:
        # The old status comes with the names (locked, so the log's "old" is what the UPDATE replaced).
        old = {
            domain_id: (name, was_active)
            for domain_id, name, was_active in db.execute(
                select(MailDomain.id, MailDomain.domain, MailDomain.is_active)
                .where(MailDomain.id.in_(ids))
                .with_for_update()
            )
        }
        found = {domain_id: name for domain_id, (name, _) in old.items()}
        if found:
            db.execute(
                update(MailDomain)
                .where(MailDomain.id.in_(found))
                .values(is_active=active, updated_at=utcnow())
            )
        audit.record(
            db,
            "domain.enable" if active else "domain.disable",
            [found[i] for i in sorted(found)],
            {name: {"status": [ENABLED[was], ENABLED[active]]} for name, was in old.values()},
        )
    return BulkResult(
        changed=[found[i] for i in sorted(found)],
        skipped=junk + [str(i) for i in ids if i not in found],
    )


@retried
def delete_domains(raw_ids: Iterable[object], newest_account: int | None = None) -> DeletionReport:
    """Delete domains with all their accounts (same cascade as account delete) and aliases.

    ``newest_account``: the highest account id the admin was shown in these domains. An account
    added after it (by the Panel, another admin, an import) refuses the delete: the admin confirmed
    what the dialog listed, not what arrived since.
    """
    ids, junk = split_ids(raw_ids)
    with transaction() as db:
        # Held until the commit, so nothing adds accounts to them meanwhile: the Panel's create
        # holds a domain it adds to in share mode (rules.sync.sync_create), so one waits for the
        # other and neither meets a foreign-key error.
        found = {domain_id: limits.domain for domain_id, limits in lock_domains(db, ids).items()}
        # A locking read: it sees (and holds) what was committed up to now, not the snapshot the
        # request's first read took, so no account of these domains escapes the cascade.
        account_ids = db.scalars(
            select(MailAccount.id).where(MailAccount.domain_id.in_(found)).with_for_update()
        ).all()
        if newest_account is not None:
            _refuse_accounts_added_since(newest_account, account_ids, [found[i] for i in sorted(found)])
        report = delete_accounts_in(db, account_ids)
        alias_names = db.scalars(
            select(MailAlias.alias_email).where(MailAlias.domain_id.in_(found)).distinct()
        ).all()
        db.execute(delete(MailAlias).where(MailAlias.domain_id.in_(found)))
        # A group keeps its members but loses an address on a domain that is gone.
        group_addresses = select(MailAddress.address).where(
            MailAddress.domain_id.in_(found), MailAddress.kind == GROUP
        )
        db.execute(update(MailGroup).where(MailGroup.email.in_(group_addresses)).values(email=None))
        db.execute(delete(MailAddress).where(MailAddress.domain_id.in_(found)))
        db.execute(delete(MailDomain).where(MailDomain.id.in_(found)))
        # The domains, not their accounts (there can be thousands): the log's target filter finds
        # what removed jane@example.com under example.com.
        audit.record(db, "domain.delete", [found[i] for i in sorted(found)])
    report.aliases_removed = sorted(set(report.aliases_removed) | set(alias_names))
    report.skipped = junk + [str(i) for i in ids if i not in found]
    report.domains = [found[i] for i in sorted(found)]
    return report


def _refuse_accounts_added_since(newest_shown: int, account_ids: list[int], domains: list[str]) -> None:
    added = sum(account_id > newest_shown for account_id in account_ids)
    if added:
        raise InvalidInput(
            f"{added} account{' was' if added == 1 else 's were'} added to"
            f" {', '.join(map(display_domain, domains))} meanwhile: nothing was deleted."
            " Look again at what goes with it."
        )
