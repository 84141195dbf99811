"""CSV import: a file is checked whole first (every row, every problem), then written all or none.

``opmail.account_csv`` reads the file's shape. With any problem nothing is written; without, every
account goes in with one INSERT per chunk, in one transaction. The database is asked about the whole
file at once, never about one row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from .. import audit
from ..account_csv import MAX_ROWS, CsvProblem, read_accounts_csv
from ..addresses import InvalidInput, display_domain, normalize_address
from ..db import get_session, retried
from ..models import MailAccount, MailAddress, MailDomain
from ..passwords import to_dovecot_hash
from ..scope import NotYourDomain, check_domain_in_scope, current_scope
from .core import (
    ACCOUNT,
    AddressTaken,
    MissingDomain,
    address_holders,
    check_display_name,
    check_password_or_hash,
    hash_new_password,
    parse_quota,
    transaction,
)
from .limits import DomainLimits, OverLimit, check_new_accounts, lock_domains, read_limits_of

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
    quota_mb: int | None = None  # None: the domain's default quota
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
    if checked("password", check_password_or_hash):
        row.stored_hash = to_dovecot_hash(cells["password"])
    row.quota_mb = checked("quota_mb", lambda cell: parse_quota(cell) if cell.strip() else None, 0)
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
    domain_ids = {
        name: domain_id
        for chunk in _chunks(domains)
        for name, domain_id in db.execute(
            select(MailDomain.domain, MailDomain.id).where(MailDomain.domain.in_(chunk))
        )
    }
    known_domains = set(domain_ids)
    taken = {
        email: deleted_at
        for chunk in _chunks(list(first_row))
        for email, deleted_at in db.execute(
            select(MailAccount.email, MailAccount.deleted_at).where(MailAccount.email.in_(chunk))
        )
    }
    holders = {
        address: holder
        for chunk in _chunks(list(first_row))
        for address, holder in address_holders(db, chunk).items()
        if holder != ACCOUNT
    }
    for row in rows:
        if row.email is None or first_row[row.email] != row.row:
            continue
        domain = row.email.partition("@")[2]
        if not current_scope().allows(domain_ids.get(domain)):
            row.add_problem("email", NotYourDomain(domain).message)
        elif domain not in known_domains:
            row.add_problem("email", MissingDomain(domain).message)
        elif row.email in holders:
            row.add_problem("email", AddressTaken(row.email, holders[row.email]).message)
        elif row.email in taken:
            row.add_problem(
                "email",
                f"The account {row.email} already exists"
                + (" (deleted by the Panel: restore it from the accounts list)." if taken[row.email] else "."),
            )
    _check_import_limits(db, rows, domain_ids)


def _check_import_limits(db, rows: list[ImportRow], domain_ids: dict[str, int]) -> None:
    """Each domain's limits against the file's good rows for it, the problem on its first row.
    Read, not locked: the import checks again, locked, when it writes."""
    by_domain: dict[str, list[ImportRow]] = {}
    for row in rows:
        if row.email is not None and not row.problems and row.email.partition("@")[2] in domain_ids:
            by_domain.setdefault(row.email.partition("@")[2], []).append(row)
    limits_of = {
        limits.domain_id: limits
        for chunk in _chunks([domain_ids[name] for name in by_domain])
        for limits in read_limits_of(db, chunk)
    }
    for name, domain_rows in by_domain.items():
        limits = limits_of.get(domain_ids[name])
        if limits is None or not limits.limited:
            continue
        try:
            check_new_accounts(db, limits, [limits.quota_for_new(row.quota_mb) for row in domain_rows])
        except OverLimit as error:
            domain_rows[0].add_problem(error.field or "email", error.message)


def quotas_of(rows: list[ImportRow], limits: DomainLimits) -> list[int]:
    return [limits.quota_for_new(row.quota_mb) for row in rows]


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


@retried
def import_accounts(check: ImportCheck, progress: Callable[[int], None] = lambda n: None) -> list[str]:
    """Add a checked file's accounts in one transaction; returns their addresses.

    Plain passwords are hashed first (bcrypt is slow by design; ``progress`` hears of each row), so
    the transaction itself is one domain lookup and one INSERT per chunk.
    """
    if not check.ok:
        raise InvalidInput("The file has problems: nothing was written.")
    hashes = []
    for row in check.rows:
        hashes.append(row.stored_hash or hash_new_password(row.cells["password"]))
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
        for name, domain_id in domain_ids.items():
            check_domain_in_scope(domain_id, name)
        # The domains locked (two statements), each checked against its limits with every row it gets.
        quotas: dict[str, int] = {}
        locked = lock_domains(db, domain_ids.values())
        rows_of: dict[str, list[ImportRow]] = {}
        for row in check.rows:
            rows_of.setdefault(row.email.partition("@")[2], []).append(row)
        for name in sorted(domain_ids, key=domain_ids.get):
            limits = locked.get(domain_ids[name])
            if limits is None:
                raise InvalidInput(f"The domain {display_domain(name)} was deleted meanwhile: nothing was written.")
            domain_rows = rows_of[name]
            for row, quota in zip(domain_rows, quotas_of(domain_rows, limits), strict=True):
                quotas[row.email] = quota
            try:
                check_new_accounts(db, limits, [quotas[row.email] for row in domain_rows])
            except OverLimit as error:
                raise InvalidInput(f"{error.message} Nothing was written.") from None
        values = [
            {
                "email": row.email,
                "domain_id": domain_ids[row.email.partition("@")[2]],
                "password": password_hash,
                "quota_mb": quotas[row.email],
                "display_name": row.display_name,
                "is_active": row.is_active,
            }
            for row, password_hash in zip(check.rows, hashes, strict=True)
        ]
        try:
            for chunk in _chunks(values):
                # The claims first: an alias or group that took one of these addresses since the
                # check stops the file here, as another account would at the next INSERT.
                db.execute(
                    insert(MailAddress),
                    [{"address": v["email"], "domain_id": v["domain_id"], "kind": ACCOUNT} for v in chunk],
                )
                db.execute(insert(MailAccount), chunk)
        except IntegrityError:
            # Someone added one of these addresses since the check: the whole file stays out.
            raise InvalidInput(
                "Some of these addresses were added meanwhile: nothing was written. Check the file again."
            ) from None
        audit.record(db, "account.import", emails)
    return emails
