"""The Panel's sync calls (create, delete, password): the webhook's rules, not its transport.

One-way, Panel → opmail (docs/sync-webhook.md). Each call is one transaction that also writes its
sync_events row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    bindparam,
    case,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from ..addresses import InvalidInput, normalize_address, normalize_domain
from ..db import Step, get_engine, read_row, retried, write_and_commit
from ..models import MailAccount, MailAddress, MailDomain, SyncEvent, utcnow
from ..passwords import to_dovecot_hash
from .core import ACCOUNT, AddressTaken, check_password_or_hash, check_quota, hash_new_password
from .limits import OverLimit, check_new_accounts, lock_domain

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
    quota_mb: int | None = None  # None: the domain's default quota (0 = unlimited without one)


class DomainDeleted(Exception):
    """The domain a create was adding to was deleted meanwhile: the call starts over (and adds it)."""


class InvalidSyncCall(InvalidInput):
    """A webhook body the contract refuses; ``errors`` maps each field to its messages."""

    limit: str | None = None  # the domain limit a create would exceed (rules.limits)

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(f"Invalid {', '.join(errors)}.", next(iter(errors)))
        self.errors = errors


class SyncOverLimit(InvalidSyncCall):
    """A create past one of the domain's limits: the answer names the limit."""

    def __init__(self, error: OverLimit) -> None:
        super().__init__({error.field or "email": [error.message]})
        self.message = f"Over the domain's limit: {error.limit}."
        self.limit = error.limit


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
    quota_mb = checked("quota_mb", lambda q: None if q is None else check_quota(q), body.get("quota_mb"))
    password = None
    if action in ("create", "password"):
        password = checked(
            "password", lambda p: check_password_or_hash(p, policy=False), body.get("password")
        )
    if errors:
        raise InvalidSyncCall(errors)
    # Hashing is slow by design (bcrypt cost 12 ≈ 255 ms): only for a call that is otherwise valid.
    password_hash = None if password is None else to_dovecot_hash(password) or hash_new_password(password, policy=False)
    return SyncCall(action, email, password_hash, quota_mb)


# The webhook's statements, built once: the Panel's agent calls for every account it touches, and
# building a statement per call cost more than running it. Plain SQL, no unit-of-work flush, and as
# few round trips as the rules allow: they are most of a call's cost (bench/README.md, "Webhook").
# A call reads (opmail.db.read_row), then sends its writes, its sync_events row and the COMMIT
# together (opmail.db.write_and_commit): on MariaDB a password, a delete and a create of a new
# account in a domain without limits are one round trip each.
_ACCOUNTS = MailAccount.__table__
_DOMAINS = MailDomain.__table__
_ADDRESSES = MailAddress.__table__
# The domain, with its limits and default quota (rules.limits), the account's id and what holds
# the address, in one round trip. No row when the domain is new: nothing in it exists yet.
_DOMAIN_AND_ADDRESS = select(
    _DOMAINS.c.id,
    # Only a domain with a count or total limit is locked exclusively: creates in the others go on
    # side by side (an admin's new limit applies from the next call on).
    or_(_DOMAINS.c.max_accounts.is_not(None), _DOMAINS.c.total_quota_mb.is_not(None)).label("limited"),
    _DOMAINS.c.default_quota_mb,
    select(_ACCOUNTS.c.id).where(_ACCOUNTS.c.email == bindparam("email")).scalar_subquery().label("account"),
    select(_ADDRESSES.c.kind).where(_ADDRESSES.c.address == bindparam("email")).scalar_subquery().label("holder"),
).where(_DOMAINS.c.domain == bindparam("domain"))
_NEW_DOMAIN = {"id": None, "limited": False, "default_quota_mb": None, "account": None, "holder": None}
_LOCKED_BY_ID = (
    select(_ACCOUNTS.c.id, _ACCOUNTS.c.deleted_at, _ACCOUNTS.c.is_active, _ACCOUNTS.c.quota_mb)
    .where(_ACCOUNTS.c.id == bindparam("account_id"))
    .with_for_update()
)
# SET takes the columns named in the parameters (all but the ones of WHERE).
_UPDATE_BY_ID = update(_ACCOUNTS).where(_ACCOUNTS.c.id == bindparam("account_id"))
_UPDATE_LIVE_BY_EMAIL = update(_ACCOUNTS).where(
    _ACCOUNTS.c.email == bindparam("address"), _ACCOUNTS.c.deleted_at.is_(None)
)
_INSERT_ACCOUNT = insert(_ACCOUNTS)
_INSERT_CLAIM = insert(_ADDRESSES)
_INSERT_DOMAIN = insert(_DOMAINS)
_INSERT_EVENT = insert(SyncEvent.__table__)


class rows_changed(FunctionElement):
    """How many rows the statement before changed (matched, for an UPDATE: opmail's MariaDB
    connections count found rows)."""

    type = Integer()
    inherit_cache = True


@compiles(rows_changed)
def _sqlite_rows_changed(_element, _compiler, **_kw) -> str:
    return "changes()"


@compiles(rows_changed, "mysql")
def _mysql_rows_changed(_element, _compiler, **_kw) -> str:
    return "ROW_COUNT()"


# The sync log row of an update that may find no account: its outcome, or "noop" when the UPDATE
# just before it matched nothing. Written in the same round trip as the UPDATE, so decided there.
_INSERT_EVENT_IF_CHANGED = insert(SyncEvent.__table__).values(
    outcome=case((rows_changed() > 0, bindparam("outcome_if_changed")), else_=literal("noop"))
)


# A create first guesses what the Panel sends most: a new account in a domain without limits. It
# writes without reading, one round trip; each INSERT adds its row only if the one before did. The
# claim finds no such domain (a new one, or one with limits to check): nothing is written. The
# address is held already (an account to update, an alias, a group): the claim's INSERT fails.
# Either way the call then reads and decides (sync_create).
_CLAIM_IN_UNLIMITED_DOMAIN = insert(_ADDRESSES).from_select(
    ["address", "domain_id", "kind"],
    select(bindparam("email", type_=_ADDRESSES.c.address.type), _DOMAINS.c.id, literal(ACCOUNT)).where(
        _DOMAINS.c.domain == bindparam("domain"),
        _DOMAINS.c.max_accounts.is_(None),
        _DOMAINS.c.total_quota_mb.is_(None),
    ),
    include_defaults=False,
)
_NOW = bindparam("now", type_=_ACCOUNTS.c.created_at.type)
_ACCOUNT_IF_CLAIMED = insert(_ACCOUNTS).from_select(
    ["email", "domain_id", "password", "quota_mb", "is_active", "last_synced_at", "created_at", "updated_at"],
    select(
        bindparam("email", type_=_ACCOUNTS.c.email.type),
        _DOMAINS.c.id,
        bindparam("password", type_=_ACCOUNTS.c.password.type),
        # The call's quota, else the domain's default, else unlimited (as when it reads first).
        func.coalesce(bindparam("quota_mb", type_=_ACCOUNTS.c.quota_mb.type), _DOMAINS.c.default_quota_mb, 0),
        true(),
        _NOW,
        _NOW,
        _NOW,
    ).where(_DOMAINS.c.domain == bindparam("domain"), rows_changed() > 0),
    include_defaults=False,
)
_EVENT_COLUMNS = ("action", "email", "outcome", "received_at", "remote_addr")
_INSERT_EVENT_IF_WRITTEN = insert(SyncEvent.__table__).from_select(
    _EVENT_COLUMNS,
    select(*(bindparam(name, type_=SyncEvent.__table__.c[name].type) for name in _EVENT_COLUMNS)).where(
        rows_changed() > 0
    ),
    include_defaults=False,
)


@dataclass(frozen=True)
class _Change:
    """What a sync call writes (after its reads) and the outcome it logs."""

    writes: list[Step]
    outcome: str
    # The outcome holds if the last write matched a row, else the call was a "noop".
    if_changed: bool = False


def _synced(
    action: str,
    email: str,
    remote_addr: str | None,
    change: Callable[[Connection, datetime], _Change],
    guess: Callable[[datetime], _Change] | None = None,
) -> str:
    """Run ``change``'s reads, then its writes with their sync_events row in one transaction; run
    it afresh after a lost race. ``guess``, if given, goes first: writes made without reading, each
    only if the one before wrote, the sync_events row too. When it writes nothing, or hits a row
    that exists, ``change`` decides instead."""
    attempts_left = SYNC_ATTEMPTS
    while True:
        try:
            # A connection of its own, not the request's ORM session: the call needs nothing of it.
            with get_engine().connect() as connection:
                now = utcnow()
                guessing = guess is not None
                planned = guess(now) if guessing else change(connection, now)
                event = {"action": action, "email": email, "received_at": now, "remote_addr": remote_addr}
                if guessing:
                    event_row = (_INSERT_EVENT_IF_WRITTEN, {**event, "outcome": planned.outcome})
                elif planned.if_changed:
                    event_row = (_INSERT_EVENT_IF_CHANGED, {**event, "outcome_if_changed": planned.outcome})
                else:
                    event_row = (_INSERT_EVENT, {**event, "outcome": planned.outcome})
                counts = write_and_commit(connection, [*planned.writes, event_row])
            if guessing and not counts[-1]:
                guess = None  # nothing written (the COMMIT ended an empty transaction): read first
                continue
            if planned.if_changed and not counts[-2]:
                return "noop"
            return planned.outcome
        except (IntegrityError, DomainDeleted):
            if guess is not None:
                guess = None  # the guess found the address held: read by what, then update or refuse
                continue
            # A concurrent call inserted the same domain or address first, or an admin deleted the
            # domain (the claim's foreign key). A new transaction (new MariaDB snapshot, no locks
            # kept) finds that row and updates it instead, or adds the domain again.
            attempts_left -= 1
            if not attempts_left:
                raise


def _within_limits(
    connection: Connection, domain_id: int, quota_mb: int | None, replacing: tuple[int, int] | None = None
) -> int:
    """Lock a limited domain, check one more mailbox (or a new quota for ``replacing``, its id and
    old quota) against its limits, and return the quota to store (the domain's default when the
    call gave none)."""
    limits = lock_domain(connection, domain_id)
    if limits is None:
        raise DomainDeleted(domain_id)
    quota = limits.quota_for_new(quota_mb)
    try:
        if replacing is None:
            check_new_accounts(connection, limits, [quota])
        else:
            check_new_accounts(connection, limits, [quota], [replacing[0]], replaced_mb=replacing[1])
    except OverLimit as error:
        raise SyncOverLimit(error) from None
    return quota


@retried
def sync_create(email: str, password_hash: str, quota_mb: int | None, remote_addr: str | None) -> str:
    """Upsert the Panel's account (and its domain): created, updated, or revived if soft-deleted.
    Within the domain's limits; without a quota, the account gets the domain's default.

    An admin's suspension wins: the Panel's create sets password and quota but never lifts it.
    """
    domain = email.partition("@")[2]

    def change(connection: Connection, now: datetime) -> _Change:
        found = read_row(connection, _DOMAIN_AND_ADDRESS, {"email": email, "domain": domain}) or _NEW_DOMAIN
        domain_id, limited, holder = found["id"], found["limited"], found["holder"]
        if holder not in (None, ACCOUNT):
            raise InvalidSyncCall({"email": [AddressTaken(email, holder).message]})
        quota = quota_mb if quota_mb is not None else found["default_quota_mb"] or 0
        values = {
            "password": password_hash,
            "quota_mb": quota,
            "deleted_at": None,
            "last_synced_at": now,
            "updated_at": now,
        }
        # Found first, then locked by primary key: a locking read of an absent address takes a gap
        # lock on MariaDB, and two creates that both hold one deadlock as soon as both insert. An
        # account deleted since the read is gone here: the call goes on as a create.
        account = None
        if found["account"] is not None:
            account = read_row(connection, _LOCKED_BY_ID, {"account_id": found["account"]})
        if account is not None:
            revived = account["deleted_at"] is not None
            if limited and (revived or quota != account["quota_mb"]):
                values["quota_mb"] = _within_limits(
                    connection, domain_id, quota_mb, None if revived else (account["id"], account["quota_mb"])
                )
            writes = [(_UPDATE_BY_ID, {"account_id": account["id"], **values})]
            if not account["is_active"]:
                return _Change(writes, "still suspended")
            return _Change(writes, "revived" if revived else "updated")
        if domain_id is None:
            domain_id = connection.execute(
                _INSERT_DOMAIN, {"domain": domain, "created_at": now, "updated_at": now}
            ).inserted_primary_key[0]
        elif limited:
            values["quota_mb"] = _within_limits(connection, domain_id, quota_mb)
        # The claim before the account: an alias or group that took the address meanwhile makes it
        # fail, and the next attempt answers with what holds it. Its foreign key holds the domain
        # (share lock) until the commit, so an admin's delete of the domain waits for the create,
        # or fails it if it came first: the next attempt adds the domain again.
        return _Change(
            [
                (_INSERT_CLAIM, {"address": email, "domain_id": domain_id, "kind": ACCOUNT}),
                (_INSERT_ACCOUNT, {"email": email, "domain_id": domain_id, "is_active": True, "created_at": now, **values}),
            ],
            "created",
        )

    def new_account(now: datetime) -> _Change:
        values = {"email": email, "domain": domain, "password": password_hash, "quota_mb": quota_mb, "now": now}
        return _Change([(_CLAIM_IN_UNLIMITED_DOMAIN, values), (_ACCOUNT_IF_CLAIMED, values)], "created")

    return _synced("create", email, remote_addr, change, guess=new_account)


def _update_live_account(email: str, outcome: str, **values: object) -> _Change:
    """Change the account at ``email`` unless it is absent or deleted (then the call is a noop).

    The UPDATE is its own locking read. Its gap lock on an absent address can hold up a concurrent
    create for a moment but never deadlock with it: this transaction inserts no account.
    """
    return _Change([(_UPDATE_LIVE_BY_EMAIL, {"address": email, **values})], outcome, if_changed=True)


@retried
def sync_delete(email: str, remote_addr: str | None) -> str:
    """Soft-delete the Panel's account (the row stays, it can no longer log in); absent = noop."""

    def change(_connection: Connection, now: datetime) -> _Change:
        return _update_live_account(email, "deleted", deleted_at=now, last_synced_at=now, updated_at=now)

    return _synced("delete", email, remote_addr, change)


@retried
def sync_password(email: str, password_hash: str, remote_addr: str | None) -> str:
    """Set the stored hash of a live account; an absent or deleted one is a noop."""

    def change(_connection: Connection, now: datetime) -> _Change:
        return _update_live_account(email, "password", password=password_hash, last_synced_at=now, updated_at=now)

    return _synced("password", email, remote_addr, change)


def apply_sync(call: SyncCall, remote_addr: str | None) -> str:
    """Apply a checked webhook call; returns the outcome written to sync_events."""
    if call.action == "create":
        return sync_create(call.email, call.password_hash, call.quota_mb, remote_addr)
    if call.action == "delete":
        return sync_delete(call.email, remote_addr)
    return sync_password(call.email, call.password_hash, remote_addr)
