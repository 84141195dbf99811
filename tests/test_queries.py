"""The accounts list past COUNT_CAP matches: a capped count, bounded pages, exact counts for searches."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import event

from opmail import demo
from opmail.db import get_engine
from opmail.queries import COUNT_CAP


@pytest.fixture
def many(app):
    """Just past the cap: 10,050 demo accounts in 10 domains."""
    with app.app_context():
        demo.seed_demo(COUNT_CAP + 50, 10, "{PLAIN}demo")


@pytest.mark.parametrize(
    "url, shows",
    [
        ("/admin/accounts/", ["10,000+ accounts", "page 1 of 200", "search or filter to reach the rest"]),
        ("/admin/accounts/?page=999", ["10,000+ accounts", "page 200 of 200"]),
        ("/admin/accounts/?q=user1000", ["11 accounts"]),  # user1000 and user10000 … user10009
        ("/admin/accounts/?q=demo00003.example", ["1,005 accounts", "page 1 of 21"]),
        ("/admin/accounts/?q=user1000@demo00001", ["1 account<"]),
        ("/admin/accounts/?status=suspended", ["502 accounts"]),  # every 20th
    ],
)
def test_list_counts_exactly_up_to_the_cap(many, admin, url, shows):
    page = admin.get(url).get_data(as_text=True)

    for text in shows:
        assert text in page


def test_last_page_past_the_cap_still_lists_accounts(many, admin):
    def addresses(page_number):
        page = admin.get(f"/admin/accounts/?page={page_number}", htmx=True).get_data(as_text=True)
        return set(re.findall(r'data-email="([^"]+)"', page)), page

    last, page = addresses(200)
    before, _ = addresses(199)

    assert len(last) == 50 and not last & before
    assert 'href="#" aria-label="Next page"' in page


def _sqlite_plans(app, client, url: str) -> list[str]:
    """SQLite's plan of each statement the request ran on mail_accounts, its steps joined by "; "."""
    with app.app_context():
        engine = get_engine()
    seen = []
    listener = lambda conn, cursor, statement, parameters, *args: seen.append((statement, parameters))  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        assert client.get(url, htmx=True).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    with engine.connect() as connection:
        return [
            "; ".join(connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).scalars("detail"))
            for statement, parameters in seen
            if statement.startswith("SELECT") and "FROM mail_accounts" in statement
        ]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_address_prefix_search_reads_an_index_range_on_sqlite(many, app, admin):
    # SQLite's LIKE ignores case and so cannot use the email index; the search is a range instead.
    # (MariaDB's LIKE 'prefix%' is a range already: bench/ prints its plans at 1M accounts.)
    plans = _sqlite_plans(app, admin, "/admin/accounts/?q=user1000")

    assert len(plans) == 2  # the capped count and the page's rows
    for plan in plans:
        assert re.search(r"USING (COVERING )?INDEX \w+ \((deleted_at=\? AND )?email>\? AND email<\?\)", plan), plan
