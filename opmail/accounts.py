"""Every rule that changes domains and accounts. The admin views, the bulk actions, the webhook and
the CLI all call these functions; each is one transaction. No Flask request in here.

A bulk action and a single edit are the same rule applied to a list of ids: the functions take id
lists and run one set-based statement per table, whatever the selection size.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, Iterator

from flask import current_app
from sqlalchemy import Connection, bindparam, case, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import audit
from .account_csv import MAX_ROWS, CsvProblem, read_accounts_csv
from .addresses import InvalidInput, display_domain, normalize_address, normalize_domain
from .db import get_engine, get_session
from .models import (
    MAX_ID,
    MailAccount,
    MailAlias,
    MailAutoresponder,
    MailDomain,
    MailGroup,
    MailGroupMember,
    SyncEvent,
    UserTwoFactor,
    utcnow,
)
from .passwords import hash_password, looks_like_hash, to_dovecot_hash, validate_password

MAX_QUOTA_MB = 10_000_000
MAX_DISPLAY_NAME = 255
# How the audit log names a status: an account is active or suspended, the rest enabled or disabled.
ACCOUNT_STATUS = {True: "active", False: "suspended"}
ENABLED = {True: "enabled", False: "disabled"}


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


def parse_quota(text: str | None) -> int:
    """A quota typed into a form: blank means 0 (unlimited); anything not a whole number is refused."""
    text = (text or "").strip().replace(",", "")
    if not text:
        return 0
    # One optional minus (a negative number gets the range message); "--5" is no number at all.
    if not text.removeprefix("-").isdigit() or not text.isascii():
        raise InvalidInput("Quota must be a whole number of MB (0 = unlimited).", "quota_mb")
    # int() refuses over 4,300 digits (ValueError); a number that long is out of range anyway.
    return check_quota(int(text) if len(text) <= 20 else MAX_QUOTA_MB + 1)


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
            number = int(str(raw))
        except ValueError:
            number = 0
        if 0 < number <= MAX_ID:
            ids.append(number)
        else:
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
        audit.record(db, "domain.create", [domain_name])
    return domain


def set_domains_active(raw_ids: Iterable[object], active: bool) -> BulkResult:
    """Enable or disable domains; a disabled domain's accounts fail login at once."""
    ids, junk = _ids(raw_ids)
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


def delete_domains(raw_ids: Iterable[object]) -> DeletionReport:
    """Delete domains with all their accounts (same cascade as account delete) and aliases."""
    ids, junk = _ids(raw_ids)
    with transaction() as db:
        found = dict(db.execute(select(MailDomain.id, MailDomain.domain).where(MailDomain.id.in_(ids))).all())
        account_ids = db.scalars(select(MailAccount.id).where(MailAccount.domain_id.in_(found))).all()
        report = _delete_accounts_in(db, account_ids)
        alias_names = db.scalars(
            select(MailAlias.alias_email).where(MailAlias.domain_id.in_(found)).distinct()
        ).all()
        db.execute(delete(MailAlias).where(MailAlias.domain_id.in_(found)))
        db.execute(delete(MailDomain).where(MailDomain.id.in_(found)))
        # The domains, not their accounts (there can be thousands): the log's target filter finds
        # what removed jane@example.com under example.com.
        audit.record(db, "domain.delete", [found[i] for i in sorted(found)])
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
        audit.record(db, "account.create", [address])
    return account, restored


def get_id(raw: object) -> int | None:
    """An id from a URL, or None when it is not one."""
    ids, _ = _ids([raw])
    return ids[0] if ids else None


def get_account(account_id: object) -> MailAccount | None:
    account_id = get_id(account_id)
    return get_session().get(MailAccount, account_id) if account_id else None


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
        select(MailAccount.email, *VERSIONED.values()).where(MailAccount.id == account_id).with_for_update()
    ).one_or_none()
    if row is None:
        raise InvalidInput("That account no longer exists.")
    email, *current = row
    seen = dict(zip(VERSIONED, (expected_version or "").split(".")))
    moved = [name for name, value in zip(VERSIONED, current) if seen.get(name) != _digest(value)]
    if not moved:
        columns = VERSIONED.values()
        unchanged = (column.is_not_distinct_from(value) for column, value in zip(columns, current))
        written = db.execute(
            update(MailAccount)
            .where(MailAccount.id == account_id, *unchanged)
            .values(**values, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount
        if written:
            return email, dict(zip(VERSIONED, current))
    raise InvalidInput(
        f"This account was changed by someone else ({', '.join(moved) or 'just now'}) since you"
        " opened this page. Reload to see the current values.",
        "version",
    )


def update_account(
    account_id: int,
    *,
    display_name: str | None,
    quota_mb: int,
    is_active: bool,
    expected_version: str,
) -> None:
    """Save the account page's details (the address itself never changes), unless someone else
    changed the account since the page showed ``expected_version``."""
    display_name = check_display_name(display_name)
    quota_mb = check_quota(quota_mb)
    with transaction() as db:
        email, before = _update_unchanged(
            db, account_id, expected_version,
            display_name=display_name, quota_mb=quota_mb, is_active=is_active,
        )
        changes = audit.diff(
            {"quota_mb": before["quota"], "status": ACCOUNT_STATUS[before["status"]]},
            {"quota_mb": quota_mb, "status": ACCOUNT_STATUS[is_active]},
        )
        audit.record(db, "account.update", [email], {email: changes} if changes else None)


def reset_password(
    account_id: int, new_password: str, confirm_password: str, *, expected_version: str
) -> None:
    """Set a new mailbox password (hashed in the configured scheme), unless someone else, e.g. the
    Panel's password sync, changed the account since the page showed ``expected_version``."""
    if new_password != confirm_password:
        raise InvalidInput("The two passwords do not match.", "confirm_password")
    password_hash = _hash(new_password, "new_password")
    with transaction() as db:
        email, _ = _update_unchanged(db, account_id, expected_version, password=password_hash)
        # That it happened, never what it became.
        audit.record(db, "account.password", [email])


def _apply_to_accounts(
    raw_ids: Iterable[object],
    action: str,
    column: str,
    value: object,
    field: str,
    label: Callable[[Any], object] = lambda value: value,
) -> BulkResult:
    """One UPDATE of ``column`` for the whole selection, logged as ``action`` with each account's
    old → new ``column`` (as ``field``, shown as ``label`` says); ids that are gone are reported."""
    ids, junk = _ids(raw_ids)
    with transaction() as db:
        # The old values come with the addresses, no extra statement; locked, so the log's "old" is
        # what the UPDATE replaced even when another admin changes the same accounts meanwhile.
        old = {
            account_id: (email, was)
            for account_id, email, was in db.execute(
                select(MailAccount.id, MailAccount.email, getattr(MailAccount, column))
                .where(MailAccount.id.in_(ids))
                .with_for_update()
            )
        }
        found = {account_id: email for account_id, (email, _) in old.items()}
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
    """Give every selected account the same quota (0 = unlimited)."""
    return _apply_to_accounts(raw_ids, "account.quota", "quota_mb", check_quota(quota_mb), "quota_mb")


def restore_accounts(raw_ids: Iterable[object]) -> BulkResult:
    """Bring back accounts the Panel soft-deleted."""
    return _apply_to_accounts(
        raw_ids,
        "account.restore",
        "deleted_at",
        None,
        "deleted_at",
        lambda moment: moment.isoformat(" ", "seconds") if moment else None,
    )


def disable_two_factor(raw_ids: Iterable[object]) -> BulkResult:
    """Force 2FA off: the user signs in to webmail with the password alone until they enrol again."""
    ids, junk = _ids(raw_ids)
    with transaction() as db:
        found = dict(db.execute(select(MailAccount.id, MailAccount.email).where(MailAccount.id.in_(ids))).all())
        db.execute(delete(UserTwoFactor).where(UserTwoFactor.email.in_(found.values())))
        audit.record(db, "account.disable_2fa", [found[i] for i in sorted(found)])
    return BulkResult(
        changed=[found[i] for i in sorted(found)],
        skipped=junk + [str(i) for i in ids if i not in found],
    )


def delete_accounts(raw_ids: Iterable[object]) -> DeletionReport:
    """Delete accounts with the cascade of schema.md, in one transaction. Maildirs are not touched."""
    ids, junk = _ids(raw_ids)
    with transaction() as db:
        report = _delete_accounts_in(db, ids)
        audit.record(db, "account.delete", report.changed)
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


# --- Aliases -------------------------------------------------------------------------------------
# An alias is its address; its destinations are one mail_aliases row each (schema.md). A catch-all
# is stored as ``@domain``, the form Postfix's virtual_alias_maps looks up last.


def normalize_alias(raw: str) -> str:
    """An alias address as stored: ``name@domain``, or ``@domain`` for the domain's catch-all."""
    raw = (raw or "").strip()
    if raw.startswith("@"):
        return "@" + _field(normalize_domain, raw[1:], "alias_email")
    return _field(normalize_address, raw, "alias_email")


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
    """A destination on one of our domains must be a live account or another alias."""
    if alias in destinations:
        raise InvalidInput("An alias cannot forward to itself.", "destinations")
    local_domains = set(
        db.scalars(
            select(MailDomain.domain).where(
                MailDomain.domain.in_(sorted({d.partition("@")[2] for d in destinations}))
            )
        )
    )
    local = [d for d in destinations if d.partition("@")[2] in local_domains]
    if not local:
        return
    known = set(
        db.scalars(
            select(MailAccount.email).where(MailAccount.email.in_(local), MailAccount.deleted_at.is_(None))
        )
    ) | set(db.scalars(select(MailAlias.alias_email).where(MailAlias.alias_email.in_(local))))
    missing = [d for d in local if d not in known]
    if missing:
        raise InvalidInput(
            f"No account or alias {', '.join(missing)} exists here: create it first, "
            "or check the spelling.",
            "destinations",
        )


def create_alias(alias: str, destinations: str | None) -> str:
    """Add an alias (or a domain's catch-all) on an existing domain, with its destinations."""
    address = normalize_alias(alias)
    targets = parse_destinations(destinations)
    with transaction() as db:
        domain_name = address.partition("@")[2]
        domain_id = db.scalar(select(MailDomain.id).where(MailDomain.domain == domain_name))
        if domain_id is None:
            raise InvalidInput(MissingDomain(domain_name).message, "alias_email")
        if db.scalar(select(MailAlias.id).where(MailAlias.alias_email == address).limit(1)):
            raise InvalidInput(f"The alias {address} already exists: edit its destinations instead.", "alias_email")
        if db.scalar(select(MailAccount.id).where(MailAccount.email == address)):
            raise InvalidInput(f"{address} is an account's address: an alias cannot take it.", "alias_email")
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
            .where(MailAlias.alias_email == alias)
            .order_by(MailAlias.destination_email)
        )
    )


def set_alias_destinations(alias: str, destinations: str | None) -> list[str]:
    """Replace an alias's destinations; rows that stay keep their id, status and dates."""
    targets = parse_destinations(destinations)
    with transaction() as db:
        current = db.scalars(select(MailAlias).where(MailAlias.alias_email == alias)).all()
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


def set_aliases_active(aliases: Iterable[str], active: bool) -> BulkResult:
    """Enable or disable aliases (every destination row of each)."""
    wanted = sorted(set(aliases))
    with transaction() as db:
        # Each alias's old status (its rows can differ) comes with the lookup, no extra statement.
        old = {
            alias: ENABLED[bool(lowest)] if lowest == highest else "partly enabled"
            for alias, lowest, highest in db.execute(
                select(MailAlias.alias_email, func.min(MailAlias.is_active), func.max(MailAlias.is_active))
                .where(MailAlias.alias_email.in_(wanted))
                .group_by(MailAlias.alias_email)
            )
        }
        found = set(old)
        if found:
            db.execute(
                update(MailAlias)
                .where(MailAlias.alias_email.in_(sorted(found)))
                .values(is_active=active, updated_at=utcnow())
            )
        audit.record(
            db,
            "alias.enable" if active else "alias.disable",
            sorted(found),
            {alias: {"status": [was, ENABLED[active]]} for alias, was in old.items()},
        )
    return BulkResult(changed=[a for a in wanted if a in found], skipped=[a for a in wanted if a not in found])


def delete_aliases(aliases: Iterable[str]) -> BulkResult:
    """Remove aliases with all their destinations."""
    wanted = sorted(set(aliases))
    with transaction() as db:
        found = set(db.scalars(select(MailAlias.alias_email).where(MailAlias.alias_email.in_(wanted))))
        db.execute(delete(MailAlias).where(MailAlias.alias_email.in_(sorted(found))))
        audit.record(db, "alias.delete", sorted(found))
    return BulkResult(changed=[a for a in wanted if a in found], skipped=[a for a in wanted if a not in found])


# --- Autoresponders ------------------------------------------------------------------------------
# One autoresponder per account (the vacation reply Dovecot's Sieve sends), keyed by its address.

MAX_SUBJECT = 255
# A TEXT column (autoresponder body, group description) holds 65,535 bytes on MariaDB: characters
# outside ASCII take 2-4 bytes each, so the limit is counted in UTF-8 bytes.
MAX_TEXT_BYTES = 65_535


@dataclass(frozen=True)
class AutoresponderInput:
    subject: str
    body: str
    starts_at: datetime | None
    ends_at: datetime | None
    is_active: bool


def _check_autoresponder(reply: AutoresponderInput) -> AutoresponderInput:
    subject = (reply.subject or "").strip()
    if not subject:
        raise InvalidInput("Enter a subject.", "subject")
    if len(subject) > MAX_SUBJECT or any(ch in subject for ch in "\r\n\x00"):
        raise InvalidInput(f"The subject must be one line of at most {MAX_SUBJECT} characters.", "subject")
    body = (reply.body or "").strip()
    if not body:
        raise InvalidInput("Enter the reply text.", "body")
    if "\x00" in body:
        raise InvalidInput("The reply text must not contain NUL characters.", "body")
    if len(body.encode()) > MAX_TEXT_BYTES:
        raise InvalidInput(
            f"The reply text must be at most {MAX_TEXT_BYTES:,} bytes (accented letters count 2).", "body"
        )
    if reply.starts_at and reply.ends_at and reply.ends_at < reply.starts_at:
        raise InvalidInput("The end date is before the start date.", "ends_at")
    return AutoresponderInput(subject, body, reply.starts_at, reply.ends_at, reply.is_active)


def create_autoresponder(email: str, reply: AutoresponderInput) -> MailAutoresponder:
    """Give an existing account its autoresponder."""
    address = _field(normalize_address, (email or "").strip(), "email")
    reply = _check_autoresponder(reply)
    with transaction() as db:
        if db.scalar(select(MailAccount.id).where(MailAccount.email == address)) is None:
            raise InvalidInput(f"There is no account {address}.", "email")
        if db.scalar(select(MailAutoresponder.id).where(MailAutoresponder.email == address)):
            raise InvalidInput(f"{address} already has an autoresponder: edit that one.", "email")
        autoresponder = MailAutoresponder(email=address, **reply.__dict__)
        db.add(autoresponder)
        audit.record(db, "autoresponder.create", [address])
    return autoresponder


def update_autoresponder(autoresponder_id: int, reply: AutoresponderInput) -> MailAutoresponder:
    """Save an autoresponder's text, dates and status (its account never changes)."""
    reply = _check_autoresponder(reply)
    with transaction() as db:
        autoresponder = db.get(MailAutoresponder, autoresponder_id)
        if autoresponder is None:
            raise InvalidInput("That autoresponder no longer exists.")
        changes = audit.diff(
            {"status": ENABLED[autoresponder.is_active]}, {"status": ENABLED[reply.is_active]}
        )
        for name, value in reply.__dict__.items():
            setattr(autoresponder, name, value)
        email = autoresponder.email
        audit.record(db, "autoresponder.update", [email], {email: changes} if changes else None)
    return autoresponder


def delete_autoresponders(raw_ids: Iterable[object]) -> BulkResult:
    """Remove autoresponders; the accounts keep receiving mail, just without the reply."""
    ids, junk = _ids(raw_ids)
    with transaction() as db:
        found = dict(
            db.execute(
                select(MailAutoresponder.id, MailAutoresponder.email).where(MailAutoresponder.id.in_(ids))
            ).all()
        )
        db.execute(delete(MailAutoresponder).where(MailAutoresponder.id.in_(list(found))))
        audit.record(db, "autoresponder.delete", [found[i] for i in sorted(found)])
    return BulkResult(
        changed=[found[i] for i in sorted(found)], skipped=junk + [str(i) for i in ids if i not in found]
    )


# --- Groups --------------------------------------------------------------------------------------


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


def save_group(group_id: int | None, name: str | None, description: str | None) -> MailGroup:
    """Create a group (``group_id`` None) or rename / re-describe one; names are unique."""
    name, description = _check_group(name, description)
    with transaction() as db:
        clash = db.scalar(select(MailGroup.id).where(MailGroup.name == name))
        if clash is not None and clash != group_id:
            raise InvalidInput(f"A group called {name} already exists.", "name")
        group = MailGroup() if group_id is None else db.get(MailGroup, group_id)
        if group is None:
            raise InvalidInput("That group no longer exists.")
        # A rename shows the old name: the log's earlier events still use it.
        renamed = group_id is not None and group.name != name
        changes = {name: {"name": [group.name, name]}} if renamed else None
        group.name, group.description = name, description
        db.add(group)
        try:
            db.flush()
        except IntegrityError:
            raise InvalidInput(f"A group called {name} already exists.", "name") from None
        audit.record(db, "group.create" if group_id is None else "group.update", [name], changes)
    return group


def delete_group(group_id: int) -> None:
    """Remove a group and its memberships (the accounts stay)."""
    with transaction() as db:
        name = db.scalar(select(MailGroup.name).where(MailGroup.id == group_id))
        db.execute(delete(MailGroupMember).where(MailGroupMember.group_id == group_id))
        db.execute(delete(MailGroup).where(MailGroup.id == group_id))
        audit.record(db, "group.delete", [name] if name is not None else [])


def add_to_group(raw_ids: Iterable[object], group_id: object) -> BulkResult:
    """Make the selected accounts members; accounts already in the group count as changed too."""
    ids, junk = _ids(raw_ids)
    with transaction() as db:
        group_id = get_id(group_id)
        group = db.get(MailGroup, group_id) if group_id else None
        if group is None:
            raise InvalidInput("Choose a group first.", "group_id")
        found = dict(db.execute(select(MailAccount.id, MailAccount.email).where(MailAccount.id.in_(ids))).all())
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


def remove_from_group(raw_ids: Iterable[object], group_id: int) -> int:
    """End the selected accounts' membership; returns how many memberships ended."""
    ids, _ = _ids(raw_ids)
    with transaction() as db:
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


# --- Panel sync ----------------------------------------------------------------------------------
# The Panel agent's webhook (spec/sync-webhook.md): one-way, Panel → opmail. Each call is one
# transaction that also writes its sync_events row.

SYNC_ACTIONS = ("create", "delete", "password")
SYNC_OUTCOMES = ("created", "updated", "revived", "deleted", "password", "noop")
# Enough for a call that lost the race to add the same domain and then the same address.
SYNC_ATTEMPTS = 3


@dataclass(frozen=True)
class SyncCall:
    """A webhook body that passed the contract's checks: the address normalised, the password ready
    to store (scheme-prefixed hash) for create and password."""

    action: str
    email: str
    password_hash: str | None = None
    quota_mb: int = 0


class InvalidSyncCall(InvalidInput):
    """A webhook body the contract refuses; ``errors`` maps each field to its messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(f"Invalid {', '.join(errors)}.", next(iter(errors)))
        self.errors = errors


def _check_sync_action(action: Any) -> str:
    if not isinstance(action, str) or action not in SYNC_ACTIONS:
        raise InvalidInput(f"The action must be one of {', '.join(SYNC_ACTIONS)} (lower-case).")
    return action


def _check_sync_domain(domain: Any, email: str) -> None:
    if normalize_domain(domain) != email.partition("@")[2]:
        raise InvalidInput("The domain does not match the domain of the email address.")


def _check_password_or_hash(password: Any) -> str:
    """A complete hash, or a plaintext password that can be hashed (hashing itself comes later)."""
    if not isinstance(password, str) or not password:
        raise InvalidInput("Enter the password: a BLF-CRYPT or SHA512-CRYPT hash, or the plaintext.")
    if to_dovecot_hash(password) is None:
        if looks_like_hash(password):
            raise InvalidInput(
                "The password looks like a hash but is not a complete BLF-CRYPT (cost 4-15) or "
                "SHA512-CRYPT (1,000-999,999 rounds) hash."
            )
        validate_password(password, current_app.config["DOVECOT_PASSWORD_SCHEME"])
    return password


def check_sync_call(body: object) -> SyncCall:
    """Check a decoded webhook body against the contract; keys it does not name are ignored."""
    if not isinstance(body, dict):
        raise InvalidSyncCall({"body": ["The body must be a JSON object."]})
    errors: dict[str, list[str]] = {}

    def checked(name: str, check: Callable[[Any], Any], value: object) -> Any:
        try:
            return check(value)
        except InvalidInput as error:
            errors[name] = [error.message]
            return None

    action = checked("action", _check_sync_action, body.get("action"))
    # normalize_address refuses every space: surrounding spaces are refused here, not trimmed.
    email = checked("email", normalize_address, body.get("email"))
    if email is not None and body.get("domain") is not None:
        checked("domain", lambda domain: _check_sync_domain(domain, email), body["domain"])
    quota_mb = checked("quota_mb", lambda q: 0 if q is None else check_quota(q), body.get("quota_mb"))
    password = None
    if action in ("create", "password"):
        password = checked("password", _check_password_or_hash, body.get("password"))
    if errors:
        raise InvalidSyncCall(errors)
    # Hashing is slow by design (bcrypt cost 12 ≈ 255 ms): only for a call that is otherwise valid.
    password_hash = None if password is None else to_dovecot_hash(password) or _hash(password)
    return SyncCall(action, email, password_hash, quota_mb)


# The webhook's statements, built once: the Panel's agent calls for every account it touches, and
# building a statement per call cost more than running it. Plain SQL, no unit-of-work flush, and as
# few round trips as the rules allow: they are most of a call's cost (bench/README.md, "Webhook").
_ACCOUNTS = MailAccount.__table__
_DOMAINS = MailDomain.__table__
# Both ids in one round trip (None where there is none yet).
_IDS = select(
    select(_ACCOUNTS.c.id).where(_ACCOUNTS.c.email == bindparam("email")).scalar_subquery().label("account"),
    select(_DOMAINS.c.id).where(_DOMAINS.c.domain == bindparam("domain")).scalar_subquery().label("domain"),
)
_LOCKED_BY_ID = (
    select(_ACCOUNTS.c.id, _ACCOUNTS.c.deleted_at).where(_ACCOUNTS.c.id == bindparam("account_id")).with_for_update()
)
# SET takes the columns named in the parameters (all but the ones of WHERE).
_UPDATE_BY_ID = update(_ACCOUNTS).where(_ACCOUNTS.c.id == bindparam("account_id"))
_UPDATE_LIVE_BY_EMAIL = update(_ACCOUNTS).where(
    _ACCOUNTS.c.email == bindparam("address"), _ACCOUNTS.c.deleted_at.is_(None)
)
_INSERT_ACCOUNT = insert(_ACCOUNTS)
_INSERT_DOMAIN = insert(_DOMAINS)
_INSERT_EVENT = insert(SyncEvent.__table__)


def _synced(
    action: str, email: str, remote_addr: str | None, change: Callable[[Connection, datetime], str]
) -> str:
    """Run ``change`` and log its outcome in one transaction; run it afresh after a lost race."""
    attempts_left = SYNC_ATTEMPTS
    while True:
        try:
            # A connection of its own, not the request's ORM session: the call needs nothing of it.
            with get_engine().begin() as connection:
                now = utcnow()
                outcome = change(connection, now)
                connection.execute(
                    _INSERT_EVENT,
                    {
                        "action": action,
                        "email": email,
                        "outcome": outcome,
                        "received_at": now,
                        "remote_addr": remote_addr,
                    },
                )
            return outcome
        except IntegrityError:
            # A concurrent call inserted the same domain or address first. A new transaction (new
            # MariaDB snapshot, no locks kept) finds that row and updates it instead.
            attempts_left -= 1
            if not attempts_left:
                raise


def sync_create(email: str, password_hash: str, quota_mb: int, remote_addr: str | None) -> str:
    """Upsert the Panel's account (and its domain): created, updated, or revived if soft-deleted."""
    domain = email.partition("@")[2]

    def change(connection: Connection, now: datetime) -> str:
        values = {
            "password": password_hash,
            "quota_mb": quota_mb,
            "is_active": True,
            "deleted_at": None,
            "last_synced_at": now,
            "updated_at": now,
        }
        ids = connection.execute(_IDS, {"email": email, "domain": domain}).one()
        # Found first, then locked by primary key: a locking read of an absent address takes a gap
        # lock on MariaDB, and two creates that both hold one deadlock as soon as both insert.
        if ids.account is not None:
            account = connection.execute(_LOCKED_BY_ID, {"account_id": ids.account}).one_or_none()
            if account is not None:
                connection.execute(_UPDATE_BY_ID, {"account_id": account.id, **values})
                return "revived" if account.deleted_at is not None else "updated"
        domain_id = ids.domain
        if domain_id is None:
            domain_id = connection.execute(
                _INSERT_DOMAIN, {"domain": domain, "created_at": now, "updated_at": now}
            ).inserted_primary_key[0]
        connection.execute(_INSERT_ACCOUNT, {"email": email, "domain_id": domain_id, "created_at": now, **values})
        return "created"

    return _synced("create", email, remote_addr, change)


def _update_live_account(connection: Connection, email: str, **values: object) -> bool:
    """Change the account at ``email`` unless it is absent or deleted; says whether it did.

    The UPDATE is its own locking read. Its gap lock on an absent address can hold up a concurrent
    create for a moment but never deadlock with it: this transaction inserts no account.
    """
    return connection.execute(_UPDATE_LIVE_BY_EMAIL, {"address": email, **values}).rowcount > 0


def sync_delete(email: str, remote_addr: str | None) -> str:
    """Soft-delete the Panel's account (the row stays, it can no longer log in); absent = noop."""

    def change(connection: Connection, now: datetime) -> str:
        deleted = _update_live_account(connection, email, deleted_at=now, last_synced_at=now, updated_at=now)
        return "deleted" if deleted else "noop"

    return _synced("delete", email, remote_addr, change)


def sync_password(email: str, password_hash: str, remote_addr: str | None) -> str:
    """Set the stored hash of a live account; an absent or deleted one is a noop."""

    def change(connection: Connection, now: datetime) -> str:
        changed = _update_live_account(
            connection, email, password=password_hash, last_synced_at=now, updated_at=now
        )
        return "password" if changed else "noop"

    return _synced("password", email, remote_addr, change)


def apply_sync(call: SyncCall, remote_addr: str | None) -> str:
    """Apply a checked webhook call; returns the outcome written to sync_events."""
    if call.action == "create":
        return sync_create(call.email, call.password_hash, call.quota_mb, remote_addr)
    if call.action == "delete":
        return sync_delete(call.email, remote_addr)
    return sync_password(call.email, call.password_hash, remote_addr)


# --- CSV import ----------------------------------------------------------------------------------
# A file is checked whole first: every row, every problem (opmail.account_csv reads its shape).
# With any problem nothing is written; without, every account goes in with one INSERT per chunk, in
# one transaction. The database is asked about the whole file at once, never about one row.

IMPORT_CHUNK = 500  # per IN list and per INSERT: well under SQLite's and MariaDB's parameter limits
IMPORT_STATUSES = {"": True, "active": True, "suspended": False}


@dataclass
class ImportRow:
    """One data row of an import file: its cells as typed (the preview shows them, never the
    password) and, when they are valid, the values to store."""

    row: int
    cells: dict[str, str]
    email: str | None = None
    stored_hash: str | None = None  # the cell was already a hash: stored as given
    quota_mb: int = 0
    display_name: str | None = None
    is_active: bool = True
    problems: list[CsvProblem] = field(default_factory=list)

    def add_problem(self, column: str | None, message: str) -> None:
        self.problems.append(CsvProblem(self.row, column, message))

    @property
    def password_label(self) -> str:
        """What the password cell holds, for the preview: the scheme of a hash, or "plain"."""
        if self.stored_hash:
            return self.stored_hash[1:].partition("}")[0] + " hash"
        return "plain (hashed on import)" if self.cells.get("password") else "—"


@dataclass
class ImportCheck:
    """A checked import file: its rows, and every problem in row order (file-wide ones first)."""

    rows: list[ImportRow]
    problems: list[CsvProblem]

    @property
    def ok(self) -> bool:
        return bool(self.rows) and not self.problems

    @property
    def bad_rows(self) -> int:
        return sum(bool(row.problems) for row in self.rows)


def _chunks(items: list, size: int = IMPORT_CHUNK) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _import_status(cell: str) -> bool:
    try:
        return IMPORT_STATUSES[cell.strip().lower()]
    except KeyError:
        raise InvalidInput("The status must be active or suspended (empty = active).") from None


def _check_import_row(number: int, cells: dict[str, str]) -> ImportRow:
    """Check one row's cells on their own (the file and the database come next)."""
    row = ImportRow(number, cells)

    def checked(column: str, check: Callable[[str], Any], default: Any = None) -> Any:
        try:
            return check(cells.get(column, ""))
        except InvalidInput as error:
            row.add_problem(column, error.message)
            return default

    row.email = checked("email", lambda cell: normalize_address(cell.strip()))
    if checked("password", _check_password_or_hash):
        row.stored_hash = to_dovecot_hash(cells["password"])
    row.quota_mb = checked("quota_mb", parse_quota, 0)
    row.display_name = checked("display_name", check_display_name)
    row.is_active = checked("status", _import_status, True)
    return row


def _check_import_addresses(rows: list[ImportRow]) -> None:
    """Duplicates in the file, missing domains, addresses taken: chunked IN queries for the file."""
    first_row: dict[str, int] = {}
    for row in rows:
        if row.email is None:
            continue
        if row.email in first_row:
            row.add_problem("email", f"{row.email} is also on row {first_row[row.email]}.")
        else:
            first_row[row.email] = row.row
    db = get_session()
    domains = sorted({email.partition("@")[2] for email in first_row})
    known_domains = {
        name
        for chunk in _chunks(domains)
        for name in db.scalars(select(MailDomain.domain).where(MailDomain.domain.in_(chunk)))
    }
    taken = {
        email: deleted_at
        for chunk in _chunks(list(first_row))
        for email, deleted_at in db.execute(
            select(MailAccount.email, MailAccount.deleted_at).where(MailAccount.email.in_(chunk))
        )
    }
    for row in rows:
        if row.email is None or first_row[row.email] != row.row:
            continue
        domain = row.email.partition("@")[2]
        if domain not in known_domains:
            row.add_problem("email", MissingDomain(domain).message)
        elif row.email in taken:
            row.add_problem(
                "email",
                f"The account {row.email} already exists"
                + (" (deleted by the Panel: restore it from the accounts list)." if taken[row.email] else "."),
            )


def check_import(data: bytes, max_rows: int = MAX_ROWS) -> ImportCheck:
    """Check an import file whole and list every problem; writes nothing."""
    table = read_accounts_csv(data, max_rows)
    rows = [_check_import_row(number, cells) for number, cells in table.records]
    by_number = {row.row: row for row in rows}
    for problem in table.problems:
        if problem.row in by_number:
            by_number[problem.row].problems.insert(0, problem)
    _check_import_addresses(rows)
    file_wide = [problem for problem in table.problems if problem.row not in by_number]
    return ImportCheck(rows, file_wide + [problem for row in rows for problem in row.problems])


def import_accounts(check: ImportCheck, progress: Callable[[int], None] = lambda n: None) -> list[str]:
    """Add a checked file's accounts in one transaction; returns their addresses.

    Plain passwords are hashed first (bcrypt is slow by design; ``progress`` hears of each row), so
    the transaction itself is one domain lookup and one INSERT per chunk.
    """
    if not check.ok:
        raise InvalidInput("The file has problems: nothing was written.")
    hashes = []
    for row in check.rows:
        hashes.append(row.stored_hash or _hash(row.cells["password"]))
        progress(1)
    emails = [row.email for row in check.rows]
    domains = sorted({email.partition("@")[2] for email in emails})
    with transaction() as db:
        domain_ids = dict(
            item
            for chunk in _chunks(domains)
            for item in db.execute(select(MailDomain.domain, MailDomain.id).where(MailDomain.domain.in_(chunk)))
        )
        if len(domain_ids) < len(domains):
            missing = sorted(set(domains) - set(domain_ids))
            raise InvalidInput(f"The domain {display_domain(missing[0])} was deleted meanwhile: nothing was written.")
        values = [
            {
                "email": row.email,
                "domain_id": domain_ids[row.email.partition("@")[2]],
                "password": password_hash,
                "quota_mb": row.quota_mb,
                "display_name": row.display_name,
                "is_active": row.is_active,
            }
            for row, password_hash in zip(check.rows, hashes)
        ]
        try:
            for chunk in _chunks(values):
                db.execute(insert(MailAccount), chunk)
        except IntegrityError:
            # Someone added one of these addresses since the check: the whole file stays out.
            raise InvalidInput(
                "Some of these addresses were added meanwhile: nothing was written. Check the file again."
            ) from None
        audit.record(db, "account.import", emails)
    return emails
