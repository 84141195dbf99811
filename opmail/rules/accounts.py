"""Accounts (mailboxes): add, edit, password, suspend, quota, restore, 2FA off, delete."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy import case, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import audit
from ..addresses import InvalidInput, normalize_address
from ..db import get_session, retried
from ..models import (
    MailAccount,
    MailAlias,
    MailAutoresponder,
    MailForward,
    MailGroupMember,
    MailSieveScript,
    UserTwoFactor,
    utcnow,
)
from ..scope import current_scope
from .core import (
    ACCOUNT,
    ACCOUNT_STATUS,
    ALIAS,
    AddressTaken,
    BulkResult,
    MissingDomain,
    check_display_name,
    check_quota,
    claim_address,
    find_domain_id,
    for_field,
    get_id,
    hash_new_password,
    release_addresses,
    split_ids,
    transaction,
)
from .forwards import drop_orphaned_copies
from .limits import check_new_accounts, check_quota_change, check_restored_accounts, limits_to_check


def in_scope():
    """The account is on one of the acting admin's domains: every rule that reads accounts by id
    says so in its WHERE, so another domain's account is as absent as a deleted one."""
    return current_scope().where(MailAccount.domain_id)


@dataclass
class DeletionReport(BulkResult):
    """What deleting accounts removed besides the rows (the Maildirs stay on disk)."""

    aliases_removed: list[str] = field(default_factory=list)
    alias_destinations_removed: int = 0
    autoresponders_removed: int = 0
    group_memberships_removed: int = 0
    two_factor_removed: int = 0
    domains: list[str] = field(default_factory=list)


@retried
def create_account(
    email: str, password: str, quota_mb: int | None = 0, display_name: str | None = None
) -> tuple[MailAccount, bool]:
    """Add an account on an existing domain, within its limits; ``quota_mb`` None gives it the
    domain's default quota. Returns (account, restored): re-adding an address the Panel
    soft-deleted restores that row with the new password and quota."""
    address = for_field(normalize_address, email.strip(), "email")
    if quota_mb is not None:
        quota_mb = check_quota(quota_mb)
    display_name = check_display_name(display_name)
    password_hash = hash_new_password(password)
    domain_name = address.partition("@")[2]
    with transaction() as db:
        domain_id = find_domain_id(db, domain_name)
        limits = None if domain_id is None else limits_to_check(db, domain_id)
        if limits is None:
            raise MissingDomain(domain_name)
        quota_mb = limits.quota_for_new(quota_mb)
        account = db.scalar(select(MailAccount).where(MailAccount.email == address))
        if account is not None and account.deleted_at is None:
            raise InvalidInput(f"The account {address} already exists.", "email")
        restored = account is not None
        check_new_accounts(db, limits, [quota_mb])
        if account is None:
            try:
                claim_address(db, address, domain_id, ACCOUNT)
            except AddressTaken as error:
                if error.holder == ACCOUNT:  # another request created it since we looked
                    raise InvalidInput(f"The account {address} already exists.", "email") from None
                raise
            account = MailAccount(email=address, domain_id=domain_id)
            db.add(account)
        account.password = password_hash
        account.quota_mb = quota_mb
        account.display_name = display_name
        account.is_active = True
        account.deleted_at = None
        try:
            db.flush()
        except IntegrityError:
            # Another request created the same address between our check and this insert.
            raise InvalidInput(f"The account {address} already exists.", "email") from None
        audit.record(db, "account.create", [address])
    return account, restored


def get_account(account_id: object) -> MailAccount | None:
    """The account ``account_id`` names, if it is one the acting admin may manage."""
    account_id = get_id(account_id)
    if not account_id:
        return None
    return get_session().scalar(select(MailAccount).where(MailAccount.id == account_id, in_scope()))


# What the account page shows or edits, and what the Panel and the bulk actions change: the
# version of an account the page was opened on (optimistic concurrency), with a name for each.
VERSIONED = {
    "display name": MailAccount.display_name,
    "quota": MailAccount.quota_mb,
    "status": MailAccount.is_active,
    "password": MailAccount.password,
    "deletion": MailAccount.deleted_at,
}


def _digest(value: object) -> str:
    # 8 hex characters per field tell a change apart well enough, and name the fields that moved.
    # The password hash is salted: its digest tells the page nothing about the password.
    return hashlib.sha256(repr(value).encode()).hexdigest()[:8]


def account_version(account: MailAccount) -> str:
    """The version of ``account`` a form carries, to be handed back as ``expected_version``."""
    return ".".join(_digest(getattr(account, column.key)) for column in VERSIONED.values())


def _update_unchanged(
    db: Session, account_id: int, expected_version: str, **values
) -> tuple[str, dict[str, object]]:
    """Write ``values`` to the account if it is still at ``expected_version``, else refuse.
    Returns the account's address and the versioned fields as they were before the write.

    FOR UPDATE holds the row on MariaDB until the commit. SQLite ignores it (and reads outside the
    write transaction), so the UPDATE repeats the check in its WHERE: a change that lands between
    the read and the write matches no row, and nothing is written.
    """
    row = db.execute(
        select(MailAccount.email, *VERSIONED.values())
        .where(MailAccount.id == account_id, in_scope())
        .with_for_update()
    ).one_or_none()
    if row is None:
        raise InvalidInput("That account no longer exists.")
    email, *current = row
    # An older or forged version has fewer parts: the fields it lacks count as moved.
    seen = dict(zip(VERSIONED, (expected_version or "").split("."), strict=False))
    moved = [name for name, value in zip(VERSIONED, current, strict=True) if seen.get(name) != _digest(value)]
    if not moved:
        columns = VERSIONED.values()
        unchanged = (column.is_not_distinct_from(value) for column, value in zip(columns, current, strict=True))
        written = db.execute(
            update(MailAccount)
            .where(MailAccount.id == account_id, *unchanged)
            .values(**values, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount
        if written:
            return email, dict(zip(VERSIONED, current, strict=True))
    raise InvalidInput(
        f"This account was changed by someone else ({', '.join(moved) or 'just now'}) since you"
        " opened this page. Reload to see the current values.",
        "version",
    )


@retried
def update_account(
    account_id: int,
    *,
    display_name: str | None,
    quota_mb: int,
    is_active: bool,
    expected_version: str,
) -> None:
    """Save the account page's details (the address itself never changes), within the domain's
    total quota, unless someone else changed the account since the page showed ``expected_version``."""
    display_name = check_display_name(display_name)
    quota_mb = check_quota(quota_mb)
    with transaction() as db:
        email, before = _update_unchanged(
            db, account_id, expected_version,
            display_name=display_name, quota_mb=quota_mb, is_active=is_active,
        )
        if before["quota"] != quota_mb:
            # Checked after the write, which locked the account (accounts before domains, as the
            # bulk edit does); a refusal rolls the write back.
            domain_id = db.scalar(select(MailAccount.domain_id).where(MailAccount.id == account_id))
            check_quota_change(db, {domain_id: [account_id]}, quota_mb, {domain_id: before["quota"]})
        fields = {
            "display_name": [before["display name"], display_name],
            "quota_mb": [before["quota"], quota_mb],
            "status": [ACCOUNT_STATUS[before["status"]], ACCOUNT_STATUS[is_active]],
        }
        # A save that changed nothing leaves no entry (audit.record drops the unmoved fields).
        audit.record(db, "account.update", [email], {email: fields})


@retried
def reset_password(
    account_id: int, new_password: str, confirm_password: str, *, expected_version: str
) -> None:
    """Set a new mailbox password (hashed in the configured scheme), unless someone else, e.g. the
    Panel's password sync, changed the account since the page showed ``expected_version``."""
    if new_password != confirm_password:
        raise InvalidInput("The two passwords do not match.", "confirm_password")
    password_hash = hash_new_password(new_password, "new_password")
    with transaction() as db:
        email, _ = _update_unchanged(db, account_id, expected_version, password=password_hash)
        # That it happened, never what it became.
        audit.record(db, "account.password", [email])


@retried
def _apply_to_accounts(
    raw_ids: Iterable[object],
    action: str,
    column: str,
    value: object,
    field: str,
    label: Callable[[Any], object] = lambda value: value,
    check: Callable[[Session, dict[int, int]], None] | None = None,
) -> BulkResult:
    """One UPDATE of ``column`` for the whole selection, logged as ``action`` with each account's
    old → new ``column`` (as ``field``, shown as ``label`` says); ids that are gone are reported."""
    ids, junk = split_ids(raw_ids)
    with transaction() as db:
        # The old values come with the addresses, no extra statement; locked, so the log's "old" is
        # what the UPDATE replaced even when another admin changes the same accounts meanwhile.
        old, domains = {}, {}
        for account_id, email, was, domain_id in db.execute(
            select(MailAccount.id, MailAccount.email, getattr(MailAccount, column), MailAccount.domain_id)
            .where(MailAccount.id.in_(ids), in_scope())
            .with_for_update()
        ):
            old[account_id] = (email, was)
            domains[account_id] = domain_id
        found = {account_id: email for account_id, (email, _) in old.items()}
        if check is not None:
            check(db, domains)
        if found:
            db.execute(
                update(MailAccount)
                .where(MailAccount.id.in_(found))
                .values({column: value, "updated_at": utcnow()})
                .execution_options(synchronize_session=False)
            )
        audit.record(
            db,
            action,
            [found[i] for i in sorted(found)],
            {email: {field: [label(was), label(value)]} for email, was in old.values()},
        )
    return BulkResult(
        changed=[found[i] for i in sorted(found)],
        skipped=junk + [str(i) for i in ids if i not in found],
    )


def set_accounts_active(raw_ids: Iterable[object], active: bool) -> BulkResult:
    """Suspend (False) or unsuspend (True): a suspended account fails IMAP login at once."""
    action = "account.unsuspend" if active else "account.suspend"
    return _apply_to_accounts(raw_ids, action, "is_active", active, "status", ACCOUNT_STATUS.get)


def set_accounts_quota(raw_ids: Iterable[object], quota_mb: object) -> BulkResult:
    """Give every selected account the same quota (0 = unlimited), within each domain's total quota."""
    quota_mb = check_quota(quota_mb)

    def within_limits(db: Session, domains: dict[int, int]) -> None:
        # The accounts are locked already; their domains next (in id order: the same order for
        # every writer, so two bulk edits wait for each other instead of deadlocking).
        by_domain: dict[int, list[int]] = {}
        for account_id, domain_id in domains.items():
            by_domain.setdefault(domain_id, []).append(account_id)
        check_quota_change(db, by_domain, quota_mb)

    return _apply_to_accounts(
        raw_ids, "account.quota", "quota_mb", quota_mb, "quota_mb", check=within_limits
    )


def restore_accounts(raw_ids: Iterable[object]) -> BulkResult:
    """Bring back accounts the Panel soft-deleted, within their domains' limits."""

    def within_limits(db: Session, domains: dict[int, int]) -> None:
        restored: dict[int, list[int]] = {}
        for account_id, quota_mb in db.execute(
            select(MailAccount.id, MailAccount.quota_mb).where(
                MailAccount.id.in_(list(domains)), MailAccount.deleted_at.is_not(None)
            )
        ):
            restored.setdefault(domains[account_id], []).append(quota_mb)
        check_restored_accounts(db, restored)

    return _apply_to_accounts(
        raw_ids,
        "account.restore",
        "deleted_at",
        None,
        "deleted_at",
        lambda moment: moment.isoformat(" ", "seconds") if moment else None,
        check=within_limits,
    )


@retried
def disable_two_factor(raw_ids: Iterable[object]) -> BulkResult:
    """Force 2FA off: the user signs in to webmail with the password alone until they enrol again."""
    ids, junk = split_ids(raw_ids)
    with transaction() as db:
        found = dict(
            db.execute(select(MailAccount.id, MailAccount.email).where(MailAccount.id.in_(ids), in_scope())).all()
        )
        db.execute(delete(UserTwoFactor).where(UserTwoFactor.email.in_(found.values())))
        audit.record(db, "account.disable_2fa", [found[i] for i in sorted(found)])
    return BulkResult(
        changed=[found[i] for i in sorted(found)],
        skipped=junk + [str(i) for i in ids if i not in found],
    )


@retried
def delete_accounts(raw_ids: Iterable[object]) -> DeletionReport:
    """Delete accounts with the cascade of docs/schema.md, in one transaction. Maildirs are not touched."""
    ids, junk = split_ids(raw_ids)
    with transaction() as db:
        report = delete_accounts_in(db, ids)
        audit.record(db, "account.delete", report.changed)
    report.skipped = junk + report.skipped
    return report


def delete_accounts_in(db, ids: list[int]) -> DeletionReport:
    # Locked, and read as committed now (not as the request's first read saw it): an account the
    # Panel added since is deleted too, never left to fail the domain's delete on its foreign key.
    found = dict(
        db.execute(
            select(MailAccount.id, MailAccount.email).where(MailAccount.id.in_(ids), in_scope()).with_for_update()
        ).all()
    )
    emails = list(found.values())
    report = DeletionReport(
        changed=[found[i] for i in sorted(found)],
        skipped=[str(i) for i in ids if i not in found],
    )
    if not found:
        return report
    # Aliases whose every destination is being deleted disappear with them.
    hits = func.sum(case((MailAlias.destination_email.in_(emails), 1), else_=0))
    per_alias = db.execute(
        select(MailAlias.alias_email, func.count(), hits)
        .where(MailAlias.alias_email.in_(
            select(MailAlias.alias_email).where(MailAlias.destination_email.in_(emails))
        ))
        .group_by(MailAlias.alias_email)
    ).all()
    report.aliases_removed = sorted(alias for alias, total, hit in per_alias if total == hit)
    report.alias_destinations_removed = db.execute(
        delete(MailAlias).where(MailAlias.destination_email.in_(emails))
    ).rowcount
    report.autoresponders_removed = db.execute(
        delete(MailAutoresponder).where(MailAutoresponder.email.in_(emails))
    ).rowcount
    report.group_memberships_removed = db.execute(
        delete(MailGroupMember).where(MailGroupMember.account_id.in_(found))
    ).rowcount
    report.two_factor_removed = db.execute(
        delete(UserTwoFactor).where(UserTwoFactor.email.in_(emails))
    ).rowcount
    db.execute(delete(MailSieveScript).where(MailSieveScript.email.in_(emails)))
    db.execute(delete(MailForward).where(MailForward.account_id.in_(found)))
    # Other accounts stop forwarding to these; one left with only its kept copy stops forwarding.
    forwarding_here = db.scalars(
        select(MailForward.account_id).where(MailForward.destination_email.in_(emails))
    ).all()
    db.execute(delete(MailForward).where(MailForward.destination_email.in_(emails)))
    drop_orphaned_copies(db, forwarding_here)
    release_addresses(db, emails, ACCOUNT)
    release_addresses(db, report.aliases_removed, ALIAS)
    db.execute(
        delete(MailAccount)
        .where(MailAccount.id.in_(found))
        .execution_options(synchronize_session=False)
    )
    return report


def maildir_path(email: str) -> str:
    """Where Dovecot keeps this mailbox: ``MAILDIR_ROOT/{domain}/{user}/Maildir``."""
    local, _, domain = email.partition("@")
    return f"{current_app.config['MAILDIR_ROOT'].rstrip('/')}/{domain}/{local}/Maildir"
