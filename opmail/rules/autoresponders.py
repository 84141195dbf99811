"""Autoresponders: one vacation reply per account (the reply Dovecot's Sieve sends), keyed by its address."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .. import audit
from ..addresses import InvalidInput, normalize_address
from ..db import get_session, retried
from ..models import MailAccount, MailAutoresponder, MailSieveScript
from ..scope import current_scope
from ..sieve import SCRIPT_NAME, vacation_script
from .core import (
    ENABLED,
    MAX_TEXT_BYTES,
    BulkResult,
    find_domain_id,
    for_field,
    split_ids,
    transaction,
)

MAX_SUBJECT = 255


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


def store_script(db: Session, autoresponder: MailAutoresponder | None, email: str) -> None:
    """Put the account's Sieve script in line with its autoresponder: a new row (a new data id, so
    Pigeonhole compiles it afresh) for an active one, none for an inactive or deleted one."""
    db.execute(delete(MailSieveScript).where(MailSieveScript.email == email, MailSieveScript.name == SCRIPT_NAME))
    if autoresponder is not None and autoresponder.is_active:
        script = vacation_script(
            email, autoresponder.subject, autoresponder.body, autoresponder.starts_at, autoresponder.ends_at
        )
        db.add(MailSieveScript(email=email, name=SCRIPT_NAME, script=script))


def _in_scope(autoresponder_id):
    return select(MailAutoresponder).where(
        MailAutoresponder.id == autoresponder_id, current_scope().where_address(MailAutoresponder.email)
    )


def autoresponder_in_scope(autoresponder_id: int | None) -> MailAutoresponder | None:
    """The autoresponder a page shows: None when missing or outside the acting admin's scope."""
    return get_session().scalar(_in_scope(autoresponder_id)) if autoresponder_id else None


@retried
def create_autoresponder(email: str, reply: AutoresponderInput) -> MailAutoresponder:
    """Give an existing account its autoresponder."""
    address = for_field(normalize_address, (email or "").strip(), "email")
    reply = _check_autoresponder(reply)
    with transaction() as db:
        domain = address.partition("@")[2]
        find_domain_id(db, domain)  # NotYourDomain before "no account": the same for every other domain
        if db.scalar(select(MailAccount.id).where(MailAccount.email == address)) is None:
            raise InvalidInput(f"There is no account {address}.", "email")
        if db.scalar(select(MailAutoresponder.id).where(MailAutoresponder.email == address)):
            raise InvalidInput(f"{address} already has an autoresponder: edit that one.", "email")
        autoresponder = MailAutoresponder(email=address, **reply.__dict__)
        db.add(autoresponder)
        store_script(db, autoresponder, address)
        audit.record(db, "autoresponder.create", [address])
    return autoresponder


@retried
def update_autoresponder(autoresponder_id: int, reply: AutoresponderInput) -> MailAutoresponder:
    """Save an autoresponder's text, dates and status (its account never changes)."""
    reply = _check_autoresponder(reply)
    with transaction() as db:
        autoresponder = db.scalar(_in_scope(autoresponder_id))
        if autoresponder is None:
            raise InvalidInput("That autoresponder no longer exists.")
        changes = audit.diff(
            {"status": ENABLED[autoresponder.is_active]}, {"status": ENABLED[reply.is_active]}
        )
        for name, value in reply.__dict__.items():
            setattr(autoresponder, name, value)
        email = autoresponder.email
        store_script(db, autoresponder, email)
        audit.record(db, "autoresponder.update", [email], {email: changes} if changes else None)
    return autoresponder


@retried
def delete_autoresponders(raw_ids: Iterable[object]) -> BulkResult:
    """Remove autoresponders; the accounts keep receiving mail, just without the reply."""
    ids, junk = split_ids(raw_ids)
    with transaction() as db:
        found = dict(
            db.execute(
                select(MailAutoresponder.id, MailAutoresponder.email).where(
                    MailAutoresponder.id.in_(ids), current_scope().where_address(MailAutoresponder.email)
                )
            ).all()
        )
        db.execute(delete(MailAutoresponder).where(MailAutoresponder.id.in_(list(found))))
        db.execute(
            delete(MailSieveScript).where(
                MailSieveScript.email.in_(list(found.values())), MailSieveScript.name == SCRIPT_NAME
            )
        )
        audit.record(db, "autoresponder.delete", [found[i] for i in sorted(found)])
    return BulkResult(
        changed=[found[i] for i in sorted(found)], skipped=junk + [str(i) for i in ids if i not in found]
    )
