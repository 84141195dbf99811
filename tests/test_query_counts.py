"""Lists and bulk actions run a constant number of SQL statements, whatever the data size."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import event

from opmail.db import get_engine, get_session
from opmail.models import MailAccount, MailAlias, MailDomain, MailQuotaUsage
from tests.conftest import ADMIN_PASSWORD


@contextmanager
def count_statements(app):
    statements = []
    with app.app_context():
        engine = get_engine()
    listener = lambda conn, cursor, statement, *args: statements.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", listener)


def fill(app, domains: int, accounts_per_domain: int, prefix: str = "d") -> list[int]:
    """Bulk-insert data with usage and aliases, so every join of the list has rows to work on."""
    with app.app_context():
        db = get_session()
        db.add_all(MailDomain(domain=f"{prefix}{d}.example") for d in range(domains))
        db.flush()
        domain_ids = [d.id for d in db.query(MailDomain).filter(MailDomain.domain.like(f"{prefix}%")).order_by(MailDomain.id)]
        for d, domain_id in enumerate(domain_ids):
            for a in range(accounts_per_domain):
                email = f"u{a}@{prefix}{d}.example"
                db.add(MailAccount(domain_id=domain_id, email=email, password="x", quota_mb=100))
                db.add(MailQuotaUsage(email=email, bytes=a * 1000, messages=a))
                db.add(MailAlias(domain_id=domain_id, alias_email=f"al{a}@{prefix}{d}.example", destination_email=email))
        db.commit()
        return list(db.scalars(db.query(MailAccount.id).statement))


@pytest.mark.parametrize(
    "url",
    [
        "/admin/accounts/",
        "/admin/accounts/?sort=usage&dir=desc&q=u",
        "/admin/accounts/?twofa=off&near_quota=1",
        "/admin/domains/",
        "/admin/aliases/",
        "/admin/aliases/?q=*u",
        "/admin/accounts/?domain=d1.example&sort=usage",
        "/admin/aliases/?domain=d0.example",
        "/admin/accounts/domain-options/?domain=d",
        "/admin/aliases/domain-options/?domain=bü",
    ],
)
def test_list_statement_count_does_not_grow_with_rows(app, admin, url):
    fill(app, 2, 2)
    with count_statements(app) as small:
        assert admin.get(url).status_code == 200
    fill_more = fill(app, 60, 5, prefix="more")  # 300 accounts in 62 domains: a full page of 50
    assert len(fill_more) > 50
    with count_statements(app) as large:
        assert admin.get(url).status_code == 200
    assert len(large) == len(small) <= 6, large


@pytest.mark.parametrize("url", ["/admin/accounts/", "/admin/aliases/?domain=d0.example"])
def test_the_domain_filter_costs_one_statement_with_a_dropdown_or_a_typeahead(app, admin, url):
    """150 domains: a dropdown of them all; 250: the typeahead. Both read the names once (at most 201)."""
    fill(app, 150, 1)
    with count_statements(app) as dropdown:
        assert 'name="domain"' in admin.get(url).text
    fill(app, 100, 0, prefix="more")
    with count_statements(app) as typeahead:
        assert 'role="combobox"' in admin.get(url).text
    assert len(typeahead) == len(dropdown), typeahead
    assert any("LIMIT" in statement and "FROM mail_domains" in statement for statement in typeahead)


@pytest.mark.parametrize(
    ("action", "extra"),
    [("suspend", {}), ("quota", {"quota_mb": "10"}), ("delete", {"admin_password": ADMIN_PASSWORD})],
)
def test_bulk_statement_count_is_the_same_for_5_and_500_accounts(app, admin, action, extra):
    ids = fill(app, 10, 51)
    counts = []
    for selection in (ids[:5], ids[5:505]):
        with count_statements(app) as statements:
            response = admin.post("/admin/accounts/action/", {"action": action, "rowid": selection, "url": "/admin/accounts/", **extra}, htmx=True)
        assert f"{len(selection)} accounts" in response.headers["HX-Trigger"]
        counts.append(len(statements))
    assert counts[0] == counts[1], counts
