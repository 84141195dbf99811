"""Every rule that changes domains and accounts. The admin views, the bulk actions, the webhook and
the CLI all call these functions; each is one transaction. No Flask request in here.

A bulk action and a single edit are the same rule applied to a list of ids: the functions take id
lists and run one set-based statement per table, whatever the selection size.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from flask import current_app
from sqlalchemy import case, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from .addresses import InvalidInput, display_domain, normalize_address, normalize_domain
from .db import get_session
from .models import (
    MailAccount,
    MailAlias,
    MailAutoresponder,
    MailDomain,
    MailGroupMember,
    UserTwoFactor,
    utcnow,
)
from .passwords import hash_password

MAX_QUOTA_MB = 10_000_000
MAX_DISPLAY_NAME = 255


class MissingDomain(InvalidInput):
    """The address's domain is not under Admin → Domains."""

    def __init__(self, domain: str) -> None:
        super().__init__(
            f"The domain {display_domain(domain)} does not exist yet: add it under Admin → Domains first.",
            "email",
        )
        self.domain = domain


@dataclass
class BulkResult:
    """What a rule did to a selection: the addresses it changed and the ids it could not find."""

    changed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


@dataclass
class DeletionReport(BulkResult):
    """What deleting accounts removed besides the rows (the Maildirs stay on disk)."""

    aliases_removed: list[str] = field(default_factory=list)
    alias_destinations_removed: int = 0
    autoresponders_removed: int = 0
    group_memberships_removed: int = 0
    two_factor_removed: int = 0
    domains: list[str] = field(default_factory=list)


@contextmanager
def transaction() -> Iterator:
    """Commit what the block did, or roll all of it back."""
    db = get_session()
    try:
        yield db
        db.commit()
    except BaseException:
        db.rollback()
        raise


def _field(check, value, name: str):
    """Run a base-layer check, naming the form field in its error."""
    try:
        return check(value)
    except InvalidInput as error:
        raise InvalidInput(error.message, name) from None


def check_quota(quota_mb: object) -> int:
    """A quota in MB: a whole number from 0 (unlimited) to 10,000,000."""
    if isinstance(quota_mb, bool) or not isinstance(quota_mb, int):
        raise InvalidInput("Quota must be a whole number of MB (0 = unlimited).", "quota_mb")
    if not 0 <= quota_mb <= MAX_QUOTA_MB:
        raise InvalidInput(f"Quota must be between 0 and {MAX_QUOTA_MB:,} MB.", "quota_mb")
    return quota_mb


def check_display_name(name: str | None) -> str | None:
    name = (name or "").strip()
    if len(name) > MAX_DISPLAY_NAME:
        raise InvalidInput(
            f"The display name is longer than {MAX_DISPLAY_NAME} characters.", "display_name"
        )
    if any(ch in name for ch in "\r\n\x00"):
        raise InvalidInput("The display name must be one line of text.", "display_name")
    return name or None


def _hash(plain: str, field_name: str = "password") -> str:
    config = current_app.config
    return _field(
        lambda p: hash_password(
            p, config["DOVECOT_PASSWORD_SCHEME"], bcrypt_rounds=config["OPMAIL_BCRYPT_ROUNDS"]
        ),
        plain,
        field_name,
    )


def _ids(raw_ids: Iterable[object]) -> tuple[list[int], list[str]]:
    """Split a selection into valid integer ids and what is not an id at all."""
    ids, junk = [], []
    for raw in raw_ids:
        try:
            ids.append(int(str(raw)))
        except ValueError:
            junk.append(str(raw))
    return sorted(set(ids)), junk


# --- Domains -------------------------------------------------------------------------------------


def create_domain(name: str) -> MailDomain:
    """Add a domain (validated, lower-case, IDNA)."""
    domain_name = _field(normalize_domain, name.strip(), "domain")
    with transaction() as db:
        if db.scalar(select(MailDomain.id).where(MailDomain.domain == domain_name)):
            raise InvalidInput(f"The domain {display_domain(domain_name)} already exists.", "domain")
        domain = MailDomain(domain=domain_name)
        db.add(domain)
    return domain


def set_domains_active(raw_ids: Iterable[object], active: bool) -> BulkResult:
    """Enable or disable domains; a disabled domain's accounts fail login at once."""
    ids, junk = _ids(raw_ids)
    with transaction() as db:
        found = dict(db.execute(select(MailDomain.id, MailDomain.domain).where(MailDomain.id.in_(ids))).all())
        if found:
            db.execute(
                update(MailDomain)
                .where(MailDomain.id.in_(found))
                .values(is_active=active, updated_at=utcnow())
            )
    return BulkResult(
        changed=[found[i] for i in sorted(found)],
        skipped=junk + [str(i) for i in ids if i not in found],
    )


def delete_domains(raw_ids: Iterable[object]) -> DeletionReport:
    """Delete domains with all their accounts (same cascade as account delete) and aliases."""
    ids, junk = _ids(raw_ids)
    with transaction() as db:
        found = dict(db.execute(select(MailDomain.id, MailDomain.domain).where(MailDomain.id.in_(ids))).all())
        account_ids = db.scalars(select(MailAccount.id).where(MailAccount.domain_id.in_(found))).all()
        report = _delete_accounts_in(db, account_ids)
        alias_names = db.scalars(
            select(MailAlias.alias_email.distinct()).where(MailAlias.domain_id.in_(found))
        ).all()
        db.execute(delete(MailAlias).where(MailAlias.domain_id.in_(found)))
        db.execute(delete(MailDomain).where(MailDomain.id.in_(found)))
    report.aliases_removed = sorted(set(report.aliases_removed) | set(alias_names))
    report.skipped = junk + [str(i) for i in ids if i not in found]
    report.domains = [found[i] for i in sorted(found)]
    return report


# --- Accounts ------------------------------------------------------------------------------------


def create_account(
    email: str, password: str, quota_mb: int = 0, display_name: str | None = None
) -> tuple[MailAccount, bool]:
    """Add an account on an existing domain. Returns (account, restored): re-adding an address the
    Panel soft-deleted restores that row with the new password and quota."""
    address = _field(normalize_address, email.strip(), "email")
    quota_mb = check_quota(quota_mb)
    display_name = check_display_name(display_name)
    password_hash = _hash(password)
    domain_name = address.partition("@")[2]
    with transaction() as db:
        domain = db.scalar(select(MailDomain).where(MailDomain.domain == domain_name))
        if domain is None:
            raise MissingDomain(domain_name)
        account = db.scalar(select(MailAccount).where(MailAccount.email == address))
        if account is not None and account.deleted_at is None:
            raise InvalidInput(f"The account {address} already exists.", "email")
        restored = account is not None
        if account is None:
            account = MailAccount(email=address, domain_id=domain.id)
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
    return account, restored


def get_account(account_id: object) -> MailAccount | None:
    ids, _ = _ids([account_id])
    return get_session().get(MailAccount, ids[0]) if ids else None


def update_account(
    account_id: int, *, display_name: str | None, quota_mb: int, is_active: bool
) -> MailAccount:
    """Save the account page's details (the address itself never changes)."""
    display_name = check_display_name(display_name)
    quota_mb = check_quota(quota_mb)
    with transaction() as db:
        account = db.get(MailAccount, account_id)
        if account is None:
            raise InvalidInput("That account no longer exists.")
        account.display_name = display_name
        account.quota_mb = quota_mb
        account.is_active = is_active
    return account


def reset_password(account_id: int, new_password: str, confirm_password: str) -> MailAccount:
    """Set a new mailbox password (hashed in the configured scheme)."""
    if new_password != confirm_password:
        raise InvalidInput("The two passwords do not match.", "confirm_password")
    password_hash = _hash(new_password, "new_password")
    with transaction() as db:
        account = db.get(MailAccount, account_id)
        if account is None:
            raise InvalidInput("That account no longer exists.")
        account.password = password_hash
    return account


def _apply_to_accounts(raw_ids: Iterable[object], **values) -> BulkResult:
    """One UPDATE for the whole selection; ids that are gone are reported, not fatal."""
    ids, junk = _ids(raw_ids)
    with transaction() as db:
        found = dict(db.execute(select(MailAccount.id, MailAccount.email).where(MailAccount.id.in_(ids))).all())
        if found:
            db.execute(
                update(MailAccount)
                .where(MailAccount.id.in_(found))
                .values(**values, updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
    return BulkResult(
        changed=[found[i] for i in sorted(found)],
        skipped=junk + [str(i) for i in ids if i not in found],
    )


def set_accounts_active(raw_ids: Iterable[object], active: bool) -> BulkResult:
    """Suspend (False) or unsuspend (True): a suspended account fails IMAP login at once."""
    return _apply_to_accounts(raw_ids, is_active=active)


def set_accounts_quota(raw_ids: Iterable[object], quota_mb: object) -> BulkResult:
    """Give every selected account the same quota (0 = unlimited)."""
    return _apply_to_accounts(raw_ids, quota_mb=check_quota(quota_mb))


def restore_accounts(raw_ids: Iterable[object]) -> BulkResult:
    """Bring back accounts the Panel soft-deleted."""
    return _apply_to_accounts(raw_ids, deleted_at=None)


def disable_two_factor(raw_ids: Iterable[object]) -> BulkResult:
    """Force 2FA off: the user signs in to webmail with the password alone until they enrol again."""
    ids, junk = _ids(raw_ids)
    with transaction() as db:
        found = dict(db.execute(select(MailAccount.id, MailAccount.email).where(MailAccount.id.in_(ids))).all())
        db.execute(delete(UserTwoFactor).where(UserTwoFactor.email.in_(found.values())))
    return BulkResult(
        changed=[found[i] for i in sorted(found)],
        skipped=junk + [str(i) for i in ids if i not in found],
    )


def delete_accounts(raw_ids: Iterable[object]) -> DeletionReport:
    """Delete accounts with the cascade of schema.md, in one transaction. Maildirs are not touched."""
    ids, junk = _ids(raw_ids)
    with transaction() as db:
        report = _delete_accounts_in(db, ids)
    report.skipped = junk + report.skipped
    return report


def _delete_accounts_in(db, ids: list[int]) -> DeletionReport:
    found = dict(db.execute(select(MailAccount.id, MailAccount.email).where(MailAccount.id.in_(ids))).all())
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
