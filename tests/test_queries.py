"""The accounts list past COUNT_CAP matches: a capped count, bounded pages, exact counts for searches."""

from __future__ import annotations

import re

import pytest

from opmail import demo
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
