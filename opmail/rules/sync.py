"""The Panel's sync calls (create, delete, password): the webhook's rules, not its transport.

One-way, Panel → opmail (docs/sync-webhook.md). Each call is one transaction that also writes its
sync_events row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..addresses import InvalidInput, normalize_address, normalize_domain
from ..db import get_engine
from ..models import MailAccount, MailAddress, MailDomain, SyncEvent, utcnow
from ..passwords import to_dovecot_hash
from .core import ACCOUNT, AddressTaken, check_password_or_hash, check_quota, hash_new_password

SYNC_ACTIONS = ("create", "delete", "password")
# "still suspended": a create that updated (or revived) an account an admin suspended; it stays so.
SYNC_OUTCOMES = ("created", "updated", "revived", "still suspended", "deleted", "password", "noop")
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


class DomainDeleted(Exception):
    """The domain a create was adding to was deleted meanwhile: the call starts over (and adds it)."""


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
        password = checked("password", check_password_or_hash, body.get("password"))
    if errors:
        raise InvalidSyncCall(errors)
    # Hashing is slow by design (bcrypt cost 12 ≈ 255 ms): only for a call that is otherwise valid.
    password_hash = None if password is None else to_dovecot_hash(password) or hash_new_password(password)
    return SyncCall(action, email, password_hash, quota_mb)


# The webhook's statements, built once: the Panel's agent calls for every account it touches, and
# building a statement per call cost more than running it. Plain SQL, no unit-of-work flush, and as
# few round trips as the rules allow: they are most of a call's cost (bench/README.md, "Webhook").
_ACCOUNTS = MailAccount.__table__
_DOMAINS = MailDomain.__table__
_ADDRESSES = MailAddress.__table__
# Both ids and what holds the address, in one round trip (None where there is none yet).
_IDS = select(
    select(_ACCOUNTS.c.id).where(_ACCOUNTS.c.email == bindparam("email")).scalar_subquery().label("account"),
    select(_DOMAINS.c.id).where(_DOMAINS.c.domain == bindparam("domain")).scalar_subquery().label("domain"),
    select(_ADDRESSES.c.kind).where(_ADDRESSES.c.address == bindparam("email")).scalar_subquery().label("holder"),
)
_LOCKED_BY_ID = (
    select(_ACCOUNTS.c.id, _ACCOUNTS.c.deleted_at, _ACCOUNTS.c.is_active).where(_ACCOUNTS.c.id == bindparam("account_id")).with_for_update()
)
# A domain the create adds an account to, held in share mode until the commit: creates in one
# domain go on side by side, while an admin's delete of the domain (rules.domains) waits for them,
# or they for it.
_SHARED_DOMAIN = select(_DOMAINS.c.id).where(_DOMAINS.c.id == bindparam("domain_id")).with_for_update(read=True)
# SET takes the columns named in the parameters (all but the ones of WHERE).
_UPDATE_BY_ID = update(_ACCOUNTS).where(_ACCOUNTS.c.id == bindparam("account_id"))
_UPDATE_LIVE_BY_EMAIL = update(_ACCOUNTS).where(
    _ACCOUNTS.c.email == bindparam("address"), _ACCOUNTS.c.deleted_at.is_(None)
)
_INSERT_ACCOUNT = insert(_ACCOUNTS)
_INSERT_CLAIM = insert(_ADDRESSES)
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
        except (IntegrityError, DomainDeleted):
            # A concurrent call inserted the same domain or address first, or an admin deleted the
            # domain. A new transaction (new MariaDB snapshot, no locks kept) finds that row and
            # updates it instead, or adds the domain again.
            attempts_left -= 1
            if not attempts_left:
                raise


def sync_create(email: str, password_hash: str, quota_mb: int, remote_addr: str | None) -> str:
    """Upsert the Panel's account (and its domain): created, updated, or revived if soft-deleted.

    An admin's suspension wins: the Panel's create sets password and quota but never lifts it.
    """
    domain = email.partition("@")[2]

    def change(connection: Connection, now: datetime) -> str:
        values = {
            "password": password_hash,
            "quota_mb": quota_mb,
            "deleted_at": None,
            "last_synced_at": now,
            "updated_at": now,
        }
        ids = connection.execute(_IDS, {"email": email, "domain": domain}).one()
        if ids.holder not in (None, ACCOUNT):
            raise InvalidSyncCall({"email": [AddressTaken(email, ids.holder).message]})
        # Found first, then locked by primary key: a locking read of an absent address takes a gap
        # lock on MariaDB, and two creates that both hold one deadlock as soon as both insert.
        if ids.account is not None:
            account = connection.execute(_LOCKED_BY_ID, {"account_id": ids.account}).one_or_none()
            if account is not None:
                connection.execute(_UPDATE_BY_ID, {"account_id": account.id, **values})
                if not account.is_active:
                    return "still suspended"
                return "revived" if account.deleted_at is not None else "updated"
        domain_id = ids.domain
        if domain_id is not None:
            if connection.execute(_SHARED_DOMAIN, {"domain_id": domain_id}).first() is None:
                # An admin deleted the domain since the ids were read. Adding it again here, after
                # a locking read that found nothing, would deadlock with another create doing the
                # same: start afresh instead, and that transaction adds the domain.
                raise DomainDeleted(domain)
        else:
            domain_id = connection.execute(
                _INSERT_DOMAIN, {"domain": domain, "created_at": now, "updated_at": now}
            ).inserted_primary_key[0]
        # The claim before the account: an alias or group that took the address meanwhile makes it
        # fail, and the next attempt answers with what holds it.
        connection.execute(_INSERT_CLAIM, {"address": email, "domain_id": domain_id, "kind": ACCOUNT})
        connection.execute(
            _INSERT_ACCOUNT, {"email": email, "domain_id": domain_id, "is_active": True, "created_at": now, **values}
        )
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
