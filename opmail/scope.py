"""Which domains the acting admin may manage: every one (a server admin, the CLI, the Panel's
webhook) or a set (a domain admin, or a host user whose ``access`` callable names domains).

The admin views set the scope at the start of each request (``opmail.admin.base``); the queries and
the rules read it and put it into their SQL (``Scope.where``), so a row of another domain is never
read, counted or written, rather than filtered out afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from flask import g
from sqlalchemy import ColumnElement, false, select, true

from .addresses import InvalidInput, display_domain, normalize_domain
from .db import get_session
from .models import AdminDomain, MailAddress, MailDomain


@dataclass(frozen=True)
class Scope:
    """``domain_ids`` None: every domain; else only those (an empty set: none)."""

    domain_ids: frozenset[int] | None = None

    @property
    def limited(self) -> bool:
        return self.domain_ids is not None

    def where(self, domain_id_column) -> ColumnElement[bool]:
        """``domain_id_column`` is one of the scope's domains (always true for every domain).

        The ids go in as a plain IN list: the indexes that lead with domain_id read only them.
        """
        if self.domain_ids is None:
            return true()
        return domain_id_column.in_(sorted(self.domain_ids)) if self.domain_ids else false()

    def where_address(self, address_column) -> ColumnElement[bool]:
        """``address_column`` holds an address claimed on one of the scope's domains (an account's,
        an alias's or a group's: every address here is in mail_addresses, with its domain)."""
        if self.domain_ids is None:
            return true()
        return address_column.in_(select(MailAddress.address).where(self.where(MailAddress.domain_id)))

    def allows(self, domain_id: int | None) -> bool:
        return self.domain_ids is None or domain_id in self.domain_ids


EVERY_DOMAIN = Scope()


class NotYourDomain(InvalidInput):
    """The address or domain typed is not one the acting domain admin manages."""

    def __init__(self, domain: str, field: str = "email") -> None:
        # The same words whether the domain exists or not: a domain admin learns nothing of others.
        super().__init__(f"{display_domain(domain)} is not one of the domains you manage.", field)
        self.domain = domain


def set_scope(scope: Scope) -> None:
    """The scope for the rest of this request."""
    g.opmail_scope = scope


def current_scope() -> Scope:
    """The acting admin's scope; every domain outside an admin request (CLI, webhook)."""
    return g.get("opmail_scope", EVERY_DOMAIN)


def admin_scope(admin) -> Scope:
    """The scope of one of opmail's own admins: a server admin's is every domain."""
    if admin.is_server_admin:
        return EVERY_DOMAIN
    ids = get_session().scalars(select(AdminDomain.domain_id).where(AdminDomain.admin_id == admin.id))
    return Scope(frozenset(ids))


def scope_of_domain_names(names: Iterable[str]) -> Scope:
    """The scope of a host user whose ``access`` callable named domains (names that are no domain
    of ours are ignored)."""
    stored = set()
    for name in [names] if isinstance(names, str) else names:
        try:
            stored.add(normalize_domain(str(name)))
        except InvalidInput:
            continue
    if not stored:
        return Scope(frozenset())
    ids = get_session().scalars(select(MailDomain.id).where(MailDomain.domain.in_(sorted(stored))))
    return Scope(frozenset(ids))


def check_domain_in_scope(domain_id: int | None, domain: str, field: str = "email") -> None:
    """Refuse (NotYourDomain) a domain outside the acting admin's scope."""
    if not current_scope().allows(domain_id):
        raise NotYourDomain(domain, field)
