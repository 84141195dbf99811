"""Mailbox forwarding: an account's mail sent on to other addresses, with or without a copy kept.

Postfix reads ``mail_forwards`` through its virtual_alias_maps: mail to the account goes to every
destination row; a row whose destination is the account itself keeps a copy in its mailbox.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import case, delete, func, select
from sqlalchemy.orm import Session

from .. import audit
from ..addresses import InvalidInput
from ..db import get_session, retried
from ..models import MailAccount, MailForward
from ..scope import current_scope
from .aliases import parse_destinations
from .core import check_local_destinations, transaction


@dataclass(frozen=True)
class Forwarding:
    """Where an account's mail goes besides (or instead of) its mailbox; no destinations = off."""

    destinations: list[str] = field(default_factory=list)
    keep_copy: bool = False

    def __str__(self) -> str:
        if not self.destinations:
            return "off"
        return ", ".join(self.destinations) + (" (copy kept)" if self.keep_copy else "")


def _forwarding(db: Session, account_id: int, email: str) -> Forwarding:
    rows = db.scalars(
        select(MailForward.destination_email)
        .where(MailForward.account_id == account_id)
        .order_by(MailForward.id)
    ).all()
    return Forwarding([row for row in rows if row != email], email in rows)


def forwarding_of(account: MailAccount) -> Forwarding:
    return _forwarding(get_session(), account.id, account.email)


@retried
def set_forwarding(account_id: int, destinations: str | None, keep_copy: bool) -> Forwarding:
    """Forward the account's mail to ``destinations`` (one per line or comma-separated; empty =
    forwarding off), keeping a copy in its mailbox when ``keep_copy``."""
    targets = parse_destinations(destinations) if (destinations or "").strip() else []
    with transaction() as db:
        email = db.scalar(
            select(MailAccount.email)
            .where(MailAccount.id == account_id, current_scope().where(MailAccount.domain_id))
            .with_for_update()
        )
        if email is None:
            raise InvalidInput("That account no longer exists.")
        if email in targets:
            raise InvalidInput(
                "The account cannot forward to itself: tick Keep a copy to keep its mail here too.",
                "destinations",
            )
        if targets:
            check_local_destinations(db, targets)
        before = _forwarding(db, account_id, email)
        after = Forwarding(targets, keep_copy and bool(targets))
        db.execute(delete(MailForward).where(MailForward.account_id == account_id))
        rows = after.destinations + ([email] if after.keep_copy else [])
        db.add_all(MailForward(account_id=account_id, destination_email=row) for row in rows)
        if before != after:
            audit.record(db, "account.forward", [email], {email: {"forwarding": [str(before), str(after)]}})
    return after


def drop_orphaned_copies(db: Session, account_ids: list[int]) -> None:
    """Among ``account_ids``, end the forwarding of those left with nothing but their kept copy."""
    if not account_ids:
        return
    others = func.sum(case((MailForward.destination_email == MailAccount.email, 0), else_=1))
    orphaned = db.scalars(
        select(MailForward.account_id)
        .join(MailAccount, MailAccount.id == MailForward.account_id)
        .where(MailForward.account_id.in_(sorted(set(account_ids))))
        .group_by(MailForward.account_id)
        .having(others == 0)
    ).all()
    if orphaned:
        db.execute(delete(MailForward).where(MailForward.account_id.in_(orphaned)))
