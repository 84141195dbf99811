"""Aliases: an address that forwards to accounts, other aliases or outside addresses.

An alias is its address; its destinations are one mail_aliases row each (docs/schema.md). A catch-all
is stored as ``@domain``, the form Postfix's virtual_alias_maps looks up last.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import audit
from ..addresses import InvalidInput, normalize_address, normalize_domain
from ..db import get_session, retried
from ..models import MailAlias, utcnow
from ..scope import current_scope
from .core import (
    ALIAS,
    ENABLED,
    AddressTaken,
    BulkResult,
    MissingDomain,
    check_local_destinations,
    claim_address,
    find_domain_id,
    for_field,
    release_addresses,
    transaction,
)
from .limits import check_new_alias, limits_to_check


def normalize_alias(raw: str) -> str:
    """An alias address as stored: ``name@domain``, or ``@domain`` for the domain's catch-all."""
    raw = (raw or "").strip()
    if raw.startswith("@"):
        return "@" + for_field(normalize_domain, raw[1:], "alias_email")
    return for_field(normalize_address, raw, "alias_email")


def parse_destinations(text: str | None) -> list[str]:
    """Destinations typed one per line or separated by commas: normalised, duplicates dropped."""
    found: list[str] = []
    for raw in (text or "").replace(",", "\n").splitlines():
        if raw.strip():
            try:
                address = normalize_address(raw.strip())
            except InvalidInput as error:
                raise InvalidInput(f"{raw.strip()}: {error.message}", "destinations") from None
            if address not in found:
                found.append(address)
    if not found:
        raise InvalidInput("Enter at least one destination address.", "destinations")
    return found


def _check_destinations(db: Session, alias: str, destinations: list[str]) -> None:
    if alias in destinations:
        raise InvalidInput("An alias cannot forward to itself.", "destinations")
    check_local_destinations(db, destinations)


@retried
def create_alias(alias: str, destinations: str | None) -> str:
    """Add an alias (or a domain's catch-all) on an existing domain, with its destinations."""
    address = normalize_alias(alias)
    targets = parse_destinations(destinations)
    with transaction() as db:
        domain_name = address.partition("@")[2]
        domain_id = find_domain_id(db, domain_name, "alias_email")
        limits = None if domain_id is None else limits_to_check(db, domain_id)
        if limits is None:
            raise InvalidInput(MissingDomain(domain_name).message, "alias_email")
        check_new_alias(db, limits)
        try:
            claim_address(db, address, domain_id, ALIAS, "alias_email")
        except AddressTaken as error:
            if error.holder == ALIAS:
                raise InvalidInput(
                    f"The alias {address} already exists: edit its destinations instead.", "alias_email"
                ) from None
            raise
        _check_destinations(db, address, targets)
        db.add_all(MailAlias(domain_id=domain_id, alias_email=address, destination_email=d) for d in targets)
        try:
            db.flush()
        except IntegrityError:
            # Another admin added the same alias between our check and this insert.
            raise InvalidInput(f"The alias {address} already exists.", "alias_email") from None
        audit.record(db, "alias.create", [address])
    return address


def alias_destinations(alias: str) -> list[str]:
    """The destinations of ``alias`` (empty when there is no such alias)."""
    return list(
        get_session().scalars(
            select(MailAlias.destination_email)
            .where(MailAlias.alias_email == alias, current_scope().where(MailAlias.domain_id))
            .order_by(MailAlias.destination_email)
        )
    )


@retried
def set_alias_destinations(alias: str, destinations: str | None) -> list[str]:
    """Replace an alias's destinations; rows that stay keep their id, status and dates."""
    targets = parse_destinations(destinations)
    with transaction() as db:
        current = db.scalars(
            select(MailAlias).where(MailAlias.alias_email == alias, current_scope().where(MailAlias.domain_id))
        ).all()
        if not current:
            raise InvalidInput("That alias no longer exists.")
        _check_destinations(db, alias, targets)
        for row in current:
            if row.destination_email not in targets:
                db.delete(row)
        kept = {row.destination_email for row in current}
        db.add_all(
            MailAlias(
                domain_id=current[0].domain_id,
                alias_email=alias,
                destination_email=d,
                is_active=current[0].is_active,
            )
            for d in targets
            if d not in kept
        )
        audit.record(db, "alias.update", [alias])
    return targets


@retried
def set_aliases_active(aliases: Iterable[str], active: bool) -> BulkResult:
    """Enable or disable aliases (every destination row of each)."""
    wanted = sorted(set(aliases))
    with transaction() as db:
        # Each alias's old status (its rows can differ) comes with the lookup, no extra statement.
        old = {
            alias: ENABLED[bool(lowest)] if lowest == highest else "partly enabled"
            for alias, lowest, highest in db.execute(
                select(MailAlias.alias_email, func.min(MailAlias.is_active), func.max(MailAlias.is_active))
                .where(MailAlias.alias_email.in_(wanted), current_scope().where(MailAlias.domain_id))
                .group_by(MailAlias.alias_email)
            )
        }
        found = set(old)
        if found:
            db.execute(
                update(MailAlias)
                .where(MailAlias.alias_email.in_(sorted(found)), current_scope().where(MailAlias.domain_id))
                .values(is_active=active, updated_at=utcnow())
            )
        audit.record(
            db,
            "alias.enable" if active else "alias.disable",
            sorted(found),
            {alias: {"status": [was, ENABLED[active]]} for alias, was in old.items()},
        )
    return BulkResult(changed=[a for a in wanted if a in found], skipped=[a for a in wanted if a not in found])


@retried
def delete_aliases(aliases: Iterable[str]) -> BulkResult:
    """Remove aliases with all their destinations."""
    wanted = sorted(set(aliases))
    with transaction() as db:
        in_scope = current_scope().where(MailAlias.domain_id)
        found = set(
            db.scalars(select(MailAlias.alias_email).where(MailAlias.alias_email.in_(wanted), in_scope).distinct())
        )
        db.execute(delete(MailAlias).where(MailAlias.alias_email.in_(sorted(found)), in_scope))
        release_addresses(db, found, ALIAS)
        audit.record(db, "alias.delete", sorted(found))
    return BulkResult(changed=[a for a in wanted if a in found], skipped=[a for a in wanted if a not in found])
