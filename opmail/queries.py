"""Read-only queries behind the admin pages: one statement per figure or list, never per row."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Select, and_, case, false, func, literal_column, or_, select, true
from sqlalchemy.orm import aliased

from .addresses import InvalidInput, display_domain, normalize_address, normalize_domain
from .db import get_session
from .models import (
    MAX_ID,
    Admin,
    AdminDomain,
    AdminEvent,
    AdminEventDomain,
    MailAccount,
    MailAddress,
    MailAlias,
    MailAutoresponder,
    MailDomain,
    MailForward,
    MailGroup,
    MailGroupMember,
    SyncEvent,
    UserTwoFactor,
)
from .scope import current_scope


def _scoped_column(scope, name: str):
    """``mail_accounts.<name>`` as a condition on a domain admin's accounts should read it: not
    through its own index. A domain admin's accounts come from the indexes that lead with domain_id
    (a range per domain); through the deleted_at or is_active ones, which hand out every account,
    the planners walked the whole table for the rows of two domains. A unary plus is "not this
    index" to SQLite and MariaDB alike."""
    column = getattr(MailAccount, name)
    return literal_column(f"+{MailAccount.__tablename__}.{name}") if scope.limited else column


def dashboard_figures() -> dict[str, int]:
    """Totals for the dashboard, in one round trip."""
    scope = current_scope()
    is_active = _scoped_column(scope, "is_active")
    live = and_(_scoped_column(scope, "deleted_at").is_(None), scope.where(MailAccount.domain_id))
    # Dovecot refuses an account of a disabled domain: it is not active, whatever its own flag says.
    in_disabled_domain = MailAccount.domain_id.in_(select(MailDomain.id).where(MailDomain.is_active.is_(False)))
    row = get_session().execute(
        select(
            select(func.count(MailDomain.id)).where(scope.where(MailDomain.id)).scalar_subquery().label("domains"),
            # The accounts of disabled domains (few domains, read by the domain index) are taken off
            # afterwards: a NOT IN here would make the largest count read every row's domain.
            select(func.count(MailAccount.id)).where(live, is_active).scalar_subquery().label("active"),
            select(func.count(MailAccount.id)).where(live, ~is_active).scalar_subquery().label("suspended"),
            select(func.count(MailAccount.id))
            .where(live, is_active, in_disabled_domain)
            .scalar_subquery()
            .label("domain_disabled"),
            select(func.count(MailAccount.id)).where(live, _two_factor_enabled).scalar_subquery().label("two_factor"),
            select(func.count(MailAccount.id)).where(live, _near_quota).scalar_subquery().label("near_quota"),
        )
    ).one()
    figures = row._asdict()
    figures["active"] -= figures["domain_disabled"]
    return figures


PER_PAGE = 50
# Beyond this many matches the accounts list stops counting ("10,000+ accounts") and paging: an exact
# COUNT(*) or a deep OFFSET reads every matching row, which at a million accounts takes seconds.
COUNT_CAP = 10_000
# A search that starts with "*" (anywhere in the address) can use no index: it reads every address
# it checks. It checks the first SUBSTRING_SCAN addresses the other filters leave, in address order,
# and the list says where it stopped, so one search never reads a million rows.
SUBSTRING_SCAN = 50_000
LAST_CHARACTER = "\U0010ffff"  # sorts after every other: term <= x < term + it is "x starts with term"
STATUSES = {
    "": "All (not deleted)",
    "active": "Active",
    "suspended": "Suspended",
    "domain_disabled": "Domain disabled",
    "deleted": "Deleted by Panel",
}


def domain_is_active(domain_id: int) -> bool:
    """Whether the domain ``domain_id`` is enabled (an account page's status needs it)."""
    return bool(get_session().scalar(select(MailDomain.is_active).where(MailDomain.id == domain_id)))
TWO_FACTOR_CHOICES = {"": "2FA: any", "on": "2FA: on", "off": "2FA: off"}
NEAR_QUOTA_SHARE = 0.9

# Conditions on MailAccount shared by the list filters and the dashboard figures. Their own aliases,
# correlated to MailAccount only: account_page also joins these tables for its columns.
_enrolment = aliased(UserTwoFactor)
_two_factor_enabled = (
    select(_enrolment.id)
    .where(_enrolment.email == MailAccount.email, _enrolment.enabled_at.is_not(None))
    .correlate(MailAccount)
    .exists()
)
# usage_share is NULL for unlimited accounts, so they are never near their quota.
_near_quota = MailAccount.usage_share >= NEAR_QUOTA_SHARE


@dataclass
class Page:
    """One page of a list, with what the pager needs."""

    rows: list
    total: int
    page: int
    per_page: int
    capped: bool = False  # more than ``total`` rows match; only the first ``total`` are paged
    scanned_to: str | None = None  # a substring search looked at the addresses up to this one only

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass(frozen=True)
class AccountFilters:
    """The accounts list's query string, parsed and clamped (bad values fall back to defaults)."""

    q: str = ""
    domain: str = ""  # a domain's name as shown (Unicode), see domain_filter
    status: str = ""
    twofa: str = ""
    near_quota: bool = False
    sort: str = "email"
    desc: bool = False
    page: int = 1

    @classmethod
    def from_args(cls, args) -> AccountFilters:
        sort = args.get("sort", "email")
        status = args.get("status", "")
        twofa = args.get("twofa", "")
        return cls(
            q=args.get("q", "").strip()[:254],
            domain=domain_filter(args.get("domain")),
            status=status if status in STATUSES else "",
            twofa=twofa if twofa in TWO_FACTOR_CHOICES else "",
            near_quota=args.get("near_quota") == "1",
            sort=sort if sort in ACCOUNT_SORTS else "email",
            desc=args.get("dir") == "desc",
            page=_positive_int(args.get("page")) or 1,
        )

    def to_args(self, **changes) -> dict[str, str]:
        """The query-string form, without defaults, so URLs stay short and shareable."""
        values = {**self.__dict__, **changes}
        args = {
            "q": values["q"],
            "domain": values["domain"],
            "status": values["status"],
            "twofa": values["twofa"],
            "near_quota": "1" if values["near_quota"] else "",
            "sort": "" if values["sort"] == "email" else values["sort"],
            "dir": "desc" if values["desc"] else "",
            "page": "" if values["page"] == 1 else values["page"],
        }
        return {key: str(value) for key, value in args.items() if value != ""}


def domain_filter(value) -> str:
    """The ``?domain=`` filter as the lists keep it in the URL and show it in the picker: a domain's
    name in its Unicode form (``bücher.de``, typed either way); other text as typed, matching nothing."""
    text = value.strip()[:254] if isinstance(value, str) else ""
    try:
        return display_domain(normalize_domain(text))
    except InvalidInput:
        return text


def _domain_condition(column, name: str):
    """``column == the id of the domain called name``: one lookup on the unique name index; a name
    that is no domain matches nothing."""
    try:
        stored = normalize_domain(name)
    except InvalidInput:
        return false()
    domain_id = get_session().scalar(select(MailDomain.id).where(MailDomain.domain == stored))
    return column == domain_id if domain_id else false()


def _positive_int(value) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if 0 < number <= MAX_ID else None


_two_factor_on = UserTwoFactor.id.is_not(None)
# Usage and share are columns of mail_accounts (kept by triggers, see models.py) with indexes after
# deleted_at and domain_id: a page of either sort reads 50 index entries. A NULL share (unlimited)
# sorts first ascending and last descending, on both backends.
ACCOUNT_SORTS = {
    "email": MailAccount.email,
    "domain": MailDomain.domain,
    "quota": MailAccount.quota_mb,
    "usage": MailAccount.used_bytes,
    "percent": MailAccount.usage_share,
    "2fa": _two_factor_on,
    "last_sync": MailAccount.last_synced_at,
    "status": MailAccount.is_active,
}


def _like_pattern(term: str) -> str:
    """A LIKE pattern for the search box: a prefix match, or ``*`` for "anything here"."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = escaped.replace("*", "%")
    return pattern if pattern.endswith("%") else pattern + "%"


def _account_conditions(filters: AccountFilters) -> tuple[list, str | None]:
    """The WHERE of the filters, and the last address a substring search reaches (None: all)."""
    # The acting admin's domains first: every other condition narrows within them.
    scope = current_scope()
    conditions = [scope.where(MailAccount.domain_id)]
    deleted_at = _scoped_column(scope, "deleted_at")
    if filters.status == "deleted":
        conditions.append(deleted_at.is_not(None))
    else:
        conditions.append(deleted_at.is_(None))
        if filters.status == "suspended":
            conditions.append(MailAccount.is_active.is_(False))
        elif filters.status:
            # Active or Domain disabled: the account's own flag is on, and its domain's is on or
            # off. The disabled domains (few) go in as a plain list of ids, which keeps the filter
            # on the accounts' indexes.
            conditions.append(MailAccount.is_active.is_(True))
            disabled = get_session().scalars(select(MailDomain.id).where(MailDomain.is_active.is_(False))).all()
            if filters.status == "active":
                if disabled:
                    conditions.append(MailAccount.domain_id.not_in(disabled))
            else:
                conditions.append(MailAccount.domain_id.in_(disabled) if disabled else false())
    if filters.domain:
        conditions.append(_domain_condition(MailAccount.domain_id, filters.domain))
    if filters.twofa:
        conditions.append(_two_factor_enabled if filters.twofa == "on" else ~_two_factor_enabled)
    if filters.near_quota:
        conditions.append(_near_quota)
    scanned_to = None
    if filters.q:
        db = get_session()
        if filters.q.startswith("*"):
            # The last address to check, and whether any comes after it.
            last, *beyond = db.scalars(
                select(MailAccount.email)
                .where(*conditions)
                .order_by(MailAccount.email)
                .offset(SUBSTRING_SCAN - 1)
                .limit(2)
            ).all() or [None]
            if beyond:
                scanned_to = last
                conditions.append(MailAccount.email <= scanned_to)
        # Prefix matches use the unique indexes on email and domain. The matching domains are
        # looked up first: with their ids as a plain IN list, MariaDB merges the two index ranges,
        # where an IN (subquery) made it scan every account.
        term = filters.q.lower()
        pattern = _like_pattern(term)
        address = MailAccount.email.like(pattern, escape="\\")
        if "*" not in term and db.get_bind(MailAccount).dialect.name == "sqlite":
            # SQLite's LIKE ignores case, so it cannot read the (binary) email index and scans.
            # Addresses are stored lower-case: the same prefix as a range reads the index.
            address = and_(MailAccount.email >= term, MailAccount.email < term + LAST_CHARACTER)
        domain_ids = db.scalars(
            select(MailDomain.id).where(MailDomain.domain.like(pattern, escape="\\"))
        ).all()
        conditions.append(or_(address, MailAccount.domain_id.in_(domain_ids)) if domain_ids else address)
    return conditions, scanned_to


def account_page(filters: AccountFilters, per_page: int = PER_PAGE) -> Page:
    """One page of the accounts list: count and rows (plus the domain lookup of a search, and the
    scan bound of a substring search), whatever the page size or the table size. Counting stops at
    COUNT_CAP, and so do the pages."""
    db = get_session()
    conditions, scanned_to = _account_conditions(filters)
    matches = select(MailAccount.id).where(*conditions).limit(COUNT_CAP + 1).subquery()
    total = db.scalar(select(func.count()).select_from(matches))
    capped = total > COUNT_CAP
    total = min(total, COUNT_CAP)
    page = min(filters.page, max(1, -(-total // per_page)))
    rows = db.execute(_account_rows(filters, conditions).limit(per_page).offset((page - 1) * per_page)).all()
    return Page(rows=rows, total=total, page=page, per_page=per_page, capped=capped, scanned_to=scanned_to)


def _account_rows(filters: AccountFilters, conditions: list) -> Select:
    """The accounts list's columns for ``conditions``, in the filters' order (no page cut)."""
    order = ACCOUNT_SORTS[filters.sort]
    order = order.desc() if filters.desc else order.asc()
    # Addresses are unique: a tie-breaker after email would stop MariaDB reading the email index in order.
    tie = () if filters.sort == "email" else (MailAccount.id.desc() if filters.desc else MailAccount.id,)
    statement = (
        select(
            MailAccount.id,
            MailAccount.email,
            MailAccount.display_name,
            MailAccount.quota_mb,
            MailAccount.is_active,
            MailAccount.deleted_at,
            MailAccount.last_synced_at,
            MailDomain.domain,
            MailDomain.is_active.label("domain_active"),
            MailAccount.used_bytes,
            _two_factor_on.label("two_factor"),
        )
        .join(MailDomain, MailDomain.id == MailAccount.domain_id)
        .outerjoin(
            UserTwoFactor,
            (UserTwoFactor.email == MailAccount.email) & UserTwoFactor.enabled_at.is_not(None),
        )
        .where(*conditions)
        .order_by(order, *tie)
    )
    if filters.sort != "domain":
        # MariaDB otherwise starts from mail_domains and sorts a million joined rows (seconds); read
        # from mail_accounts through the index of the filter and sort. Sorting by domain is the
        # exception: there the domains' own order is the one to follow.
        statement = statement.prefix_with("STRAIGHT_JOIN", dialect="mysql")
    return statement


EXPORT_CHUNK = 1000


def account_export(filters: AccountFilters) -> Iterator[tuple]:
    """Every account the filters match (not one page), in the list's order, as the CSV export's
    cells. One statement, read EXPORT_CHUNK rows at a time (a server-side cursor on MariaDB), so
    a million accounts never sit in memory together."""
    conditions, _ = _account_conditions(filters)
    statement = _account_rows(filters, conditions).execution_options(
        yield_per=EXPORT_CHUNK
    )
    for row in get_session().execute(statement):
        # The account's own status, which an import reads back (the domain's shows in the list).
        status = "deleted" if row.deleted_at else "active" if row.is_active else "suspended"
        last_sync = row.last_synced_at.isoformat(sep=" ") if row.last_synced_at else ""
        yield row.email, row.display_name, row.quota_mb, status, row.used_bytes, last_sync


# Up to this many domains the lists filter by a plain dropdown of them all; above it, by the picker's
# typeahead (a dropdown of 10,000 domains made every full page 660 KB).
DOMAIN_SELECT_MAX = 200
DOMAIN_MATCHES = 20


def domain_choices(limit: int = DOMAIN_SELECT_MAX) -> list[str] | None:
    """Every domain's stored name, alphabetical, for the plain dropdown; None when there are more
    than ``limit`` (the lists then show the typeahead). Reads at most ``limit`` + 1 index entries."""
    names = get_session().scalars(
        select(MailDomain.domain)
        .where(current_scope().where(MailDomain.id))
        .order_by(MailDomain.domain)
        .limit(limit + 1)
    ).all()
    return None if len(names) > limit else names


def _starts_with(column, prefix: str):
    """``column`` starts with ``prefix``, as a condition that reads the column's index."""
    if get_session().get_bind(MailDomain).dialect.name == "sqlite":
        # SQLite's LIKE ignores case and cannot use the index; names are stored lower-case.
        return and_(column >= prefix, column < prefix + LAST_CHARACTER)
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.like(escaped + "%", escape="\\")


def domain_matches(typed: str, limit: int = DOMAIN_MATCHES) -> list[str]:
    """The stored names of the first ``limit`` domains whose name starts with ``typed``, as stored
    or as shown (``bü`` finds ``xn--bcher-kva.de``, shown ``bücher.de``), in the dropdown's order.

    Two index range scans: the stored names, and the Unicode names of international domains.
    """
    text = unicodedata.normalize("NFC", typed.strip().lower())[:253]
    if any(ch.isspace() for ch in text):
        return []
    db = get_session()
    found: set[str] = set()
    for column in (MailDomain.domain, MailDomain.unicode_domain):
        found.update(
            db.scalars(
                select(MailDomain.domain)
                .where(_starts_with(column, text), current_scope().where(MailDomain.id))
                .order_by(column)
                .limit(limit)
            )
        )
    # MariaDB's collation may match more (``bu`` for ``bü``): keep what really starts with it.
    matching = (name for name in found if name.startswith(text) or display_domain(name).startswith(text))
    return sorted(matching)[:limit]


def domain_page(page: int = 1, per_page: int = PER_PAGE) -> Page:
    """One page of domains with their account and alias counts. The page's domains are picked
    first; the counts are correlated subqueries on them alone (an index range per shown domain),
    never a grouping of every account."""
    db = get_session()
    in_scope = current_scope().where(MailDomain.id)
    total = db.scalar(select(func.count(MailDomain.id)).where(in_scope))
    page = min(max(1, page), max(1, -(-total // per_page)))
    shown = (
        select(
            MailDomain.id,
            MailDomain.domain,
            MailDomain.is_active,
            MailDomain.created_at,
            MailDomain.max_accounts,
            MailDomain.max_aliases,
            MailDomain.total_quota_mb,
            MailDomain.default_quota_mb,
        )
        .where(in_scope)
        .order_by(MailDomain.domain)
        .limit(per_page)
        .offset((page - 1) * per_page)
        .subquery()
    )
    live_accounts = (MailAccount.domain_id == shown.c.id, MailAccount.deleted_at.is_(None))
    accounts = select(func.count()).select_from(MailAccount).where(*live_accounts).scalar_subquery()
    quota_mb = select(func.coalesce(func.sum(MailAccount.quota_mb), 0)).where(*live_accounts).scalar_subquery()
    # What max_aliases counts: the addresses of aliases and groups (rules.limits).
    alias_addresses = (
        select(func.count())
        .select_from(MailAddress)
        .where(MailAddress.domain_id == shown.c.id, MailAddress.kind != "account")
        .scalar_subquery()
    )
    aliases = (
        select(func.count(MailAlias.alias_email.distinct()))
        .where(MailAlias.domain_id == shown.c.id)
        .scalar_subquery()
    )
    rows = db.execute(
        select(
            shown.c.id,
            shown.c.domain,
            shown.c.is_active,
            shown.c.created_at,
            accounts.label("accounts"),
            aliases.label("aliases"),
            alias_addresses.label("alias_addresses"),
            quota_mb.label("quota_mb"),
            shown.c.max_accounts,
            shown.c.max_aliases,
            shown.c.total_quota_mb,
            shown.c.default_quota_mb,
        ).order_by(shown.c.domain)
    ).all()
    return Page(rows=rows, total=total, page=page, per_page=per_page)


def domain_use(domain_id: int) -> dict[str, int]:
    """What a domain uses of its limits: mailboxes (not deleted), alias and group addresses, and
    the quotas of its mailboxes added up (MB), with how many of them are unlimited."""
    db = get_session()
    accounts, quota_mb, unlimited = db.execute(
        select(
            func.count(),
            func.coalesce(func.sum(MailAccount.quota_mb), 0),
            func.coalesce(func.sum(case((MailAccount.quota_mb == 0, 1), else_=0)), 0),
        ).where(MailAccount.domain_id == domain_id, MailAccount.deleted_at.is_(None))
    ).one()
    aliases = db.scalar(
        select(func.count()).where(MailAddress.domain_id == domain_id, MailAddress.kind != "account")
    )
    return {"accounts": accounts, "aliases": aliases, "quota_mb": int(quota_mb), "unlimited": int(unlimited)}


def domain_contents(domain_id: int) -> dict[str, int]:
    """What deleting a domain would take with it, and its newest account's id (0 when it has none):
    the delete refuses accounts added after the dialog showed this."""
    db = get_session()
    accounts, newest = db.execute(
        select(func.count(MailAccount.id), func.coalesce(func.max(MailAccount.id), 0))
        .where(MailAccount.domain_id == domain_id)
    ).one()
    return {
        "accounts": accounts,
        "newest_account": newest,
        "aliases": db.scalar(
            select(func.count(MailAlias.alias_email.distinct())).where(MailAlias.domain_id == domain_id)
        ),
    }


def recent_admin_events(limit: int = 10) -> list:
    """The latest admin changes, newest first (the dashboard's Last admin actions)."""
    return get_session().execute(
        select(AdminEvent.occurred_at, AdminEvent.actor, AdminEvent.action, AdminEvent.targets)
        .where(admin_events_in_scope())
        .order_by(AdminEvent.occurred_at.desc(), AdminEvent.id.desc())
        .limit(limit)
    ).all()


def admin_events_in_scope():
    """The audit log entries the acting admin may read: every one for a server admin; for a domain
    admin, those linked to its domains (audit.record links each entry to the domains it touched)."""
    scope = current_scope()
    if not scope.limited:
        return true()
    return AdminEvent.id.in_(select(AdminEventDomain.event_id).where(scope.where(AdminEventDomain.domain_id)))


def admin_page(page: int = 1, per_page: int = PER_PAGE) -> Page:
    """Admin → Admins: one page of admins, each with the domains it manages (one grouped join)."""
    db = get_session()
    total = db.scalar(select(func.count(Admin.id)))
    page = min(max(1, page), max(1, -(-total // per_page)))
    shown = select(Admin).order_by(Admin.username).limit(per_page).offset((page - 1) * per_page).subquery()
    rows = db.execute(
        select(
            shown.c.id,
            shown.c.username,
            shown.c.role,
            shown.c.require_2fa,
            shown.c.totp_secret.is_not(None).label("two_factor"),
            shown.c.last_login_at,
            func.aggregate_strings(MailDomain.domain, ",").label("domains"),
        )
        .outerjoin(AdminDomain, AdminDomain.admin_id == shown.c.id)
        .outerjoin(MailDomain, MailDomain.id == AdminDomain.domain_id)
        .group_by(
            shown.c.id, shown.c.username, shown.c.role, shown.c.require_2fa, shown.c.totp_secret, shown.c.last_login_at
        )
        .order_by(shown.c.username)
    ).all()
    return Page(rows=rows, total=total, page=page, per_page=per_page)


def domain_admin_names(domain_ids: list[int]) -> dict[int, list[str]]:
    """Who manages each of ``domain_ids`` besides the server admins (the Domains list's column)."""
    names: dict[int, list[str]] = {}
    for domain_id, username in get_session().execute(
        select(AdminDomain.domain_id, Admin.username)
        .join(Admin, Admin.id == AdminDomain.admin_id)
        .where(AdminDomain.domain_id.in_(domain_ids))
        .order_by(Admin.username)
    ):
        names.setdefault(domain_id, []).append(username)
    return names


def has_two_factor(email: str) -> bool:
    """Whether the user finished TOTP enrolment in webmail."""
    return get_session().scalar(
        select(UserTwoFactor.id).where(UserTwoFactor.email == email, UserTwoFactor.enabled_at.is_not(None))
    ) is not None


def recent_syncs(limit: int = 10) -> list:
    """The latest Panel sync calls, newest first (the dashboard's Recent Syncs)."""
    return get_session().execute(
        select(SyncEvent.action, SyncEvent.email, SyncEvent.outcome, SyncEvent.received_at)
        .order_by(SyncEvent.received_at.desc(), SyncEvent.id.desc())
        .limit(limit)
    ).all()


@dataclass(frozen=True)
class AliasFilters:
    """The aliases list's query string: search, domain, page."""

    q: str = ""
    domain: str = ""
    page: int = 1

    @classmethod
    def from_args(cls, args) -> AliasFilters:
        return cls(
            q=args.get("q", "").strip()[:254],
            domain=domain_filter(args.get("domain")),
            page=_positive_int(args.get("page")) or 1,
        )

    def to_args(self, **changes) -> dict[str, str]:
        values = {**self.__dict__, **changes}
        args = {"q": values["q"], "domain": values["domain"], "page": "" if values["page"] == 1 else values["page"]}
        return {key: str(value) for key, value in args.items() if value != ""}


@dataclass(frozen=True)
class AliasRow:
    alias_email: str
    domain: str
    is_active: bool
    destinations: list[str]


def alias_page(filters: AliasFilters, per_page: int = PER_PAGE) -> Page:
    """One page of aliases, each with its destinations grouped into one row by the database."""
    db = get_session()
    conditions = [current_scope().where(MailAlias.domain_id)]
    if filters.domain:
        conditions.append(_domain_condition(MailAlias.domain_id, filters.domain))
    if filters.q:
        # An alias matches when its address, its domain or any of its destinations does.
        pattern = _like_pattern(filters.q.lower())
        other = aliased(MailAlias)
        matching = select(other.alias_email).where(
            or_(
                other.alias_email.like(pattern, escape="\\"),
                other.destination_email.like(pattern, escape="\\"),
                other.domain_id.in_(select(MailDomain.id).where(MailDomain.domain.like(pattern, escape="\\"))),
            )
        )
        conditions.append(MailAlias.alias_email.in_(matching))
    total = db.scalar(select(func.count(MailAlias.alias_email.distinct())).where(*conditions))
    page = min(filters.page, max(1, -(-total // per_page)))
    rows = db.execute(
        select(
            MailAlias.alias_email,
            MailDomain.domain,
            func.min(MailAlias.is_active),
            func.aggregate_strings(MailAlias.destination_email, ","),
        )
        .join(MailDomain, MailDomain.id == MailAlias.domain_id)
        .where(*conditions)
        .group_by(MailAlias.alias_email, MailDomain.domain)
        .order_by(MailAlias.alias_email)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return Page(
        rows=[
            AliasRow(alias, domain, bool(active), sorted(destinations.split(",")))
            for alias, domain, active, destinations in rows
        ],
        total=total,
        page=page,
        per_page=per_page,
    )


def autoresponder_page(page: int = 1, email: str | None = None, per_page: int = PER_PAGE) -> Page:
    """Autoresponders by address (all, or one account's), one page."""
    db = get_session()
    conditions = [current_scope().where_address(MailAutoresponder.email)]
    if email:
        conditions.append(MailAutoresponder.email == email)
    total = db.scalar(select(func.count(MailAutoresponder.id)).where(*conditions))
    page = min(max(1, page), max(1, -(-total // per_page)))
    rows = db.scalars(
        select(MailAutoresponder)
        .where(*conditions)
        .order_by(MailAutoresponder.email, MailAutoresponder.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return Page(rows=rows, total=total, page=page, per_page=per_page)


def group_page(page: int = 1, per_page: int = PER_PAGE) -> Page:
    """Groups with their member counts (one grouped subquery)."""
    db = get_session()
    members = (
        select(MailGroupMember.group_id, func.count().label("n")).group_by(MailGroupMember.group_id).subquery()
    )
    in_scope = current_scope().where_address(MailGroup.email)
    total = db.scalar(select(func.count(MailGroup.id)).where(in_scope))
    page = min(max(1, page), max(1, -(-total // per_page)))
    rows = db.execute(
        select(
            MailGroup.id,
            MailGroup.name,
            MailGroup.email,
            MailGroup.description,
            func.coalesce(members.c.n, 0).label("members"),
        )
        .outerjoin(members, members.c.group_id == MailGroup.id)
        .where(in_scope)
        .order_by(MailGroup.name)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return Page(rows=rows, total=total, page=page, per_page=per_page)


def group_choices() -> list[tuple[int, str]]:
    """(id, name) for the "Add to group" dropdowns, alphabetical."""
    return get_session().execute(
        select(MailGroup.id, MailGroup.name)
        .where(current_scope().where_address(MailGroup.email))
        .order_by(MailGroup.name)
    ).all()


def group_members(group_id: int) -> list:
    """(id, email) of a group's members, alphabetical."""
    return get_session().execute(
        select(MailAccount.id, MailAccount.email)
        .join(MailGroupMember, MailGroupMember.account_id == MailAccount.id)
        .where(
            MailGroupMember.group_id == group_id,
            MailGroupMember.group_id.in_(
                select(MailGroup.id).where(current_scope().where_address(MailGroup.email))
            ),
        )
        .order_by(MailAccount.email)
    ).all()


def account_groups(account_id: int) -> list:
    """(id, name) of the groups an account belongs to."""
    return get_session().execute(
        select(MailGroup.id, MailGroup.name)
        .join(MailGroupMember, MailGroupMember.group_id == MailGroup.id)
        .where(MailGroupMember.account_id == account_id, current_scope().where_address(MailGroup.email))
        .order_by(MailGroup.name)
    ).all()


def idna_2008_review() -> list[str]:
    """Stored domains and destinations whose form IDNA 2008 changes or refuses, one line each.

    Earlier releases stored domains under IDNA 2003. Only ``xn--`` labels can differ (ASCII ones
    follow the same rules under both), so only rows holding one are read. Nothing is changed: two
    rows that turn out to be one address are the admin's to merge, never opmail's.
    """
    db = get_session()
    stored = set(db.scalars(select(MailDomain.domain)))
    lines = []
    for domain in sorted(d for d in stored if "xn--" in d):
        lines.extend(_idna_line("domain", domain, normalize_domain, stored))
    destinations = set(
        db.scalars(select(MailAlias.destination_email).where(MailAlias.destination_email.like("%xn--%")))
    ) | set(db.scalars(select(MailForward.destination_email).where(MailForward.destination_email.like("%xn--%"))))
    for address in sorted(destinations):
        lines.extend(_idna_line("destination", address, normalize_address, set()))
    return lines


def _idna_line(kind: str, value: str, normalize, existing: set[str]) -> list[str]:
    try:
        new = normalize(value)
    except InvalidInput as error:
        return [f"IDNA 2008: the {kind} {value} is refused now ({error.message}) Left as it is: change it by hand."]
    if new == value:
        return []
    clash = f" and {new} exists too: the two are one name now, merge them by hand" if new in existing else ""
    return [f"IDNA 2008: the {kind} {value} is written {new} now{clash}. Left as it is."]
