"""The audit log: who changed what in the admin, written in the same transaction as the change.

The admin views (and CLI commands that change accounts) name the actor with ``acting_as``; the rules
in ``opmail.rules`` call ``record`` inside their transaction. Without an actor, e.g. for the Panel's
webhook, whose calls ``sync_events`` already logs, ``record`` writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from flask import g
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from .models import AdminEvent, AdminEventDomain, MailDomain

Changes = dict[str, dict[str, list[object]]]

# The action names the rules record. Stable: the audit view's filter and bookmarked links use them.
ACTIONS = (
    "domain.create", "domain.enable", "domain.disable", "domain.delete", "domain.limits",
    "account.create", "account.update", "account.password", "account.suspend", "account.unsuspend",
    "account.quota", "account.restore", "account.disable_2fa", "account.delete", "account.forward",
    "alias.create", "alias.update", "alias.enable", "alias.disable", "alias.delete",
    "autoresponder.create", "autoresponder.update", "autoresponder.delete",
    "group.create", "group.update", "group.delete", "group.add", "group.remove",
    "account.import",
    "admin.2fa_on", "admin.2fa_off", "admin.2fa_codes", "admin.2fa_reset", "admin.domains", "admin.delete",
)


def set_actor(name: str | None) -> None:
    """Name who is acting for the rest of this request or command."""
    g.opmail_actor = name


def current_actor() -> str | None:
    return g.get("opmail_actor")


@contextmanager
def acting_as(name: str) -> Iterator[None]:
    previous = current_actor()
    set_actor(name)
    try:
        yield
    finally:
        set_actor(previous)


def diff(old: dict[str, object], new: dict[str, object]) -> dict[str, list[object]]:
    """The fields whose value differs, as ``{field: [old, new]}``."""
    return {name: [old[name], value] for name, value in new.items() if old[name] != value}


def record(
    db: Session, action: str, targets: Iterable[str], changes: Changes | None = None, also: Iterable[str] = ()
) -> None:
    """Add one admin_events row to ``db``'s transaction, if an admin is acting and anything changed,
    linked to the domains of its targets (and of the addresses in ``also``, e.g. a group's).

    With ``changes``, only its fields whose value moved count: a target none of whose fields moved
    (suspending a suspended account) is left out, and with no target left there is no row.
    """
    actor = current_actor()
    targets = list(targets)
    if changes is not None:
        moved = {
            target: {name: pair for name, pair in fields.items() if pair[0] != pair[1]}
            for target, fields in changes.items()
        }
        changes = {target: fields for target, fields in moved.items() if fields}
        targets = [target for target in targets if target in changes]
    if actor is None or not targets:
        return
    event = AdminEvent(
        actor=actor,
        action=action,
        targets="\n".join(targets),
        changes=json.dumps(changes, default=str, sort_keys=True) if changes else None,
    )
    db.add(event)
    # The domains the change touched: each target is an address or a domain's name (a group's name
    # matches none; its members' addresses and its own do). Their admins read the entry.
    names = sorted({target.rpartition("@")[2] for target in [*targets, *also]})
    domain_ids = db.scalars(select(MailDomain.id).where(MailDomain.domain.in_(names))).all()
    if domain_ids:
        db.flush()
        db.execute(insert(AdminEventDomain), [{"domain_id": i, "event_id": event.id} for i in domain_ids])
