"""Groups: distribution lists. Mail to a group's address reaches every member's mailbox.

Members are accounts of this server (outside addresses belong in an alias); a member whose
account the Panel deleted receives nothing. Postfix reads the members through virtual_alias_maps.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from .. import audit
from ..addresses import InvalidInput, normalize_address
from ..db import get_session, retried
from ..models import MailAccount, MailGroup, MailGroupMember
from ..scope import current_scope
from .core import (
    GROUP,
    MAX_DISPLAY_NAME,
    MAX_TEXT_BYTES,
    BulkResult,
    MissingDomain,
    claim_address,
    find_domain_id,
    for_field,
    get_id,
    release_addresses,
    split_ids,
    transaction,
)
from .limits import check_new_alias, limits_to_check


def _check_group(name: str | None, description: str | None) -> tuple[str, str | None]:
    name = (name or "").strip()
    if not name:
        raise InvalidInput("Enter a group name.", "name")
    if len(name) > MAX_DISPLAY_NAME or any(ch in name for ch in "\r\n\x00"):
        raise InvalidInput(f"The group name must be one line of at most {MAX_DISPLAY_NAME} characters.", "name")
    description = (description or "").strip()
    if len(description.encode()) > MAX_TEXT_BYTES:
        raise InvalidInput(
            f"The description must be at most {MAX_TEXT_BYTES:,} bytes (accented letters count 2).",
            "description",
        )
    return name, description or None


def _scoped_group(db, group_id) -> MailGroup | None:
    """The group ``group_id`` when it is in the acting admin's scope (its address on one of the
    scope's domains; a group without an address is a server admin's only), else None."""
    return db.scalar(
        select(MailGroup).where(MailGroup.id == group_id, current_scope().where_address(MailGroup.email))
    )


def group_in_scope(group_id: int | None) -> MailGroup | None:
    """The group a page shows: None when missing or outside the acting admin's scope."""
    return _scoped_group(get_session(), group_id) if group_id else None


def _check_group_address(email: str | None) -> str | None:
    email = (email or "").strip()
    return for_field(normalize_address, email, "email") if email else None


@retried
def save_group(
    group_id: int | None, name: str | None, description: str | None, email: str | None = None
) -> MailGroup:
    """Create a group (``group_id`` None) or change one: names are unique, and the group's address
    (optional, on one of our domains) belongs to nothing else."""
    name, description = _check_group(name, description)
    address = _check_group_address(email)
    if address is None and current_scope().limited:
        # A group without an address belongs to no domain: only a server admin manages those.
        raise InvalidInput("Enter the group's address, on one of the domains you manage.", "email")
    with transaction() as db:
        clash = db.scalar(select(MailGroup.id).where(MailGroup.name == name))
        if clash is not None and clash != group_id:
            raise InvalidInput(f"A group called {name} already exists.", "name")
        group = MailGroup() if group_id is None else _scoped_group(db, group_id)
        if group is None:
            raise InvalidInput("That group no longer exists.")
        changes: dict[str, list] = {}
        # A rename shows the old name: the log's earlier events still use it.
        if group_id is not None and group.name != name:
            changes["name"] = [group.name, name]
        if address != group.email:
            # The old address first: moving a group's address within its domain takes no new place.
            if group.email is not None:
                release_addresses(db, [group.email], GROUP)
            if address is not None:
                domain = address.partition("@")[2]
                domain_id = find_domain_id(db, domain)
                limits = None if domain_id is None else limits_to_check(db, domain_id)
                if limits is None:
                    raise MissingDomain(domain)
                check_new_alias(db, limits, "email")
                claim_address(db, address, domain_id, GROUP)
            if group_id is not None:
                changes["address"] = [group.email, address]
        group.name, group.description, group.email = name, description, address
        db.add(group)
        try:
            db.flush()
        except IntegrityError:
            raise InvalidInput(f"A group called {name} already exists.", "name") from None
        audit.record(
            db, "group.create" if group_id is None else "group.update", [name], {name: changes} if changes else None
        )
    return group


@retried
def delete_group(group_id: int) -> None:
    """Remove a group and its memberships (the accounts stay); its address bounces from now on."""
    with transaction() as db:
        group = _scoped_group(db, group_id)
        if group is None:
            return  # missing, or another domain's: nothing to delete either way
        name, email = group.name, group.email
        db.execute(delete(MailGroupMember).where(MailGroupMember.group_id == group_id))
        db.execute(delete(MailGroup).where(MailGroup.id == group_id))
        if email is not None:
            release_addresses(db, [email], GROUP)
        audit.record(db, "group.delete", [name] if name is not None else [])


@retried
def add_to_group(raw_ids: Iterable[object], group_id: object) -> BulkResult:
    """Make the selected accounts members; accounts already in the group count as changed too."""
    ids, junk = split_ids(raw_ids)
    with transaction() as db:
        group_id = get_id(group_id)
        group = _scoped_group(db, group_id) if group_id else None
        if group is None:
            raise InvalidInput("Choose a group first.", "group_id")
        found = dict(
            db.execute(
                select(MailAccount.id, MailAccount.email).where(
                    MailAccount.id.in_(ids), current_scope().where(MailAccount.domain_id)
                )
            ).all()
        )
        members = set(
            db.scalars(
                select(MailGroupMember.account_id).where(
                    MailGroupMember.group_id == group.id, MailGroupMember.account_id.in_(list(found))
                )
            )
        )
        added = [i for i in sorted(found) if i not in members]
        db.add_all(MailGroupMember(group_id=group.id, account_id=i) for i in added)
        # The group, then the accounts that joined (those already in it did not change).
        audit.record(db, "group.add", [group.name, *(found[i] for i in added)] if added else [])
    return BulkResult(
        changed=[found[i] for i in sorted(found)], skipped=junk + [str(i) for i in ids if i not in found]
    )


@retried
def remove_from_group(raw_ids: Iterable[object], group_id: int) -> int:
    """End the selected accounts' membership; returns how many memberships ended."""
    ids, _ = split_ids(raw_ids)
    with transaction() as db:
        if _scoped_group(db, group_id) is None:
            return 0
        leaving = db.execute(
            select(MailGroup.name, MailAccount.email)
            .join(MailGroupMember, MailGroupMember.group_id == MailGroup.id)
            .join(MailAccount, MailAccount.id == MailGroupMember.account_id)
            .where(MailGroup.id == group_id, MailGroupMember.account_id.in_(ids))
            .order_by(MailAccount.email)
        ).all()
        removed = db.execute(
            delete(MailGroupMember).where(
                MailGroupMember.group_id == group_id, MailGroupMember.account_id.in_(ids)
            )
        ).rowcount
        # The group, then the accounts that left.
        audit.record(db, "group.remove", [leaving[0].name, *(row.email for row in leaving)] if leaving else [])
        return removed
