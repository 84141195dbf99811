"""What every rule shares: the transaction, the checks of quota, display name and password, ids."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..addresses import InvalidInput, display_address, display_domain
from ..db import get_session
from ..models import MAX_ID, MailAccount, MailAddress, MailDomain
from ..passwords import (
    check_password_length,
    hash_password,
    looks_like_hash,
    to_dovecot_hash,
    validate_password,
)
from ..scope import check_domain_in_scope

MAX_QUOTA_MB = 10_000_000
MAX_DISPLAY_NAME = 255
# A TEXT column (autoresponder body, group description) holds 65,535 bytes on MariaDB: characters
# outside ASCII take 2-4 bytes each, so the limit is counted in UTF-8 bytes.
MAX_TEXT_BYTES = 65_535
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


# What can hold an address (mail_addresses.kind), and how a refusal names the holder.
ACCOUNT, ALIAS, GROUP = "account", "alias", "group"
HOLDER_NAMES = {ACCOUNT: "an account", ALIAS: "an alias", GROUP: "a group's address"}


class AddressTaken(InvalidInput):
    """The address already belongs to another account, alias or group: one address, one thing."""

    def __init__(self, address: str, holder: str | None, field: str = "email") -> None:
        if holder is None:  # lost a race: the other writer's row was not there when we looked
            message = f"{display_address(address)} was just taken by another change: reload and check."
        else:
            message = (
                f"{display_address(address)} is already {HOLDER_NAMES[holder]}: an address can be "
                "an account, an alias or a group, only one of them."
            )
        super().__init__(message, field)
        self.address = address
        self.holder = holder


@dataclass
class BulkResult:
    """What a rule did to a selection: the addresses it changed and the ids it could not find."""

    changed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


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


def find_domain_id(db: Session, name: str, field: str = "email") -> int | None:
    """The id of our domain ``name`` (None: there is none). Outside the acting admin's scope it is
    NotYourDomain, said before whether the domain exists: a domain admin learns nothing of others."""
    domain_id = db.scalar(select(MailDomain.id).where(MailDomain.domain == name))
    check_domain_in_scope(domain_id, name, field)
    return domain_id


def address_holders(db: Session, addresses: Iterable[str]) -> dict[str, str]:
    """Which of ``addresses`` are taken, and by what kind of thing."""
    return dict(
        db.execute(select(MailAddress.address, MailAddress.kind).where(MailAddress.address.in_(list(addresses)))).all()
    )


def claim_address(db: Session, address: str, domain_id: int, kind: str, field: str = "email") -> None:
    """Make ``address`` ``kind``'s in ``db``'s transaction, or raise AddressTaken.

    The read gives the clear message; the INSERT's primary key is the guarantee: a writer that
    claimed the address after our read (another node, the Panel) makes it fail, never both win.
    """
    holder = address_holders(db, [address]).get(address)
    if holder is not None:
        raise AddressTaken(address, holder, field)
    try:
        db.execute(insert(MailAddress).values(address=address, domain_id=domain_id, kind=kind))
    except IntegrityError:
        raise AddressTaken(address, None, field) from None


def release_addresses(db: Session, addresses: Iterable[str], kind: str) -> None:
    """Free ``kind``'s claims on ``addresses`` (those another kind holds stay)."""
    addresses = list(addresses)
    if addresses:
        db.execute(
            delete(MailAddress).where(MailAddress.address.in_(addresses), MailAddress.kind == kind)
        )


def check_local_destinations(db: Session, destinations: list[str], field: str = "destinations") -> None:
    """A destination on one of our domains must exist: a live account, an alias or a group."""
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
    holders = address_holders(db, local)
    live_accounts = set(
        db.scalars(
            select(MailAccount.email).where(MailAccount.email.in_(local), MailAccount.deleted_at.is_(None))
        )
    )
    missing = [d for d in local if d not in live_accounts and holders.get(d) not in (ALIAS, GROUP)]
    if missing:
        raise InvalidInput(
            f"No account, alias or group {', '.join(missing)} exists here: create it first, "
            "or check the spelling.",
            field,
        )


def for_field(check, value, name: str):
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


def check_password_policy(plain: str, field_name: str = "password") -> None:
    """The password policy (``OPMAIL_PASSWORD_MIN_LENGTH``) for a password typed here: a mailbox's
    (Add Account, Reset Password, CSV import) or an admin's. The one place it is applied.

    Not for the Panel's calls: the Panel has its own policy, and a hash it sends cannot be measured
    anyway; refusing its plaintext here would leave the two systems disagreeing about the account.
    """
    for_field(
        lambda p: check_password_length(p, int(current_app.config["OPMAIL_PASSWORD_MIN_LENGTH"])),
        plain,
        field_name,
    )


def hash_new_password(plain: str, field_name: str = "password", *, policy: bool = True) -> str:
    """Hash a plaintext password in the configured scheme, after the policy unless ``policy=False``
    (the Panel's plaintext)."""
    config = current_app.config
    # What cannot be stored at all is said first (an empty or control-character password).
    for_field(lambda p: validate_password(p, config["DOVECOT_PASSWORD_SCHEME"]), plain, field_name)
    if policy:
        check_password_policy(plain, field_name)
    return for_field(
        lambda p: hash_password(
            p, config["DOVECOT_PASSWORD_SCHEME"], bcrypt_rounds=config["OPMAIL_BCRYPT_ROUNDS"]
        ),
        plain,
        field_name,
    )


def check_password_or_hash(password: Any, *, policy: bool = True) -> str:
    """A complete hash, or a plaintext password that can be hashed (hashing itself comes later)
    and, unless ``policy=False`` (the Panel's), meets the password policy."""
    if not isinstance(password, str) or not password:
        raise InvalidInput("Enter the password: a BLF-CRYPT or SHA512-CRYPT hash, or the plaintext.")
    if to_dovecot_hash(password) is None:
        if looks_like_hash(password):
            raise InvalidInput(
                "The password looks like a hash but is not a complete BLF-CRYPT (cost 4-15) or "
                "SHA512-CRYPT (1,000-999,999 rounds) hash."
            )
        validate_password(password, current_app.config["DOVECOT_PASSWORD_SCHEME"])
        if policy:
            check_password_policy(password)
    return password


def split_ids(raw_ids: Iterable[object]) -> tuple[list[int], list[str]]:
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


def get_id(raw: object) -> int | None:
    """An id from a URL, or None when it is not one."""
    ids, _ = split_ids([raw])
    return ids[0] if ids else None
