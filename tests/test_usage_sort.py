"""Sorting the accounts list by usage and by share of the quota, fed by what Dovecot writes."""

from __future__ import annotations

import re

import pytest

from opmail.db import get_engine
from tests.helpers import add_account, add_domain

MB = 1048576


def dovecot_upsert(app, email: str, size: int) -> None:
    """The statement Dovecot's quota_clone dict runs: it writes mail_quota_usage and nothing else."""
    with app.app_context(), get_engine().begin() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql(
                "INSERT INTO mail_quota_usage (email, bytes, messages) VALUES (?, ?, 1) "
                "ON CONFLICT (email) DO UPDATE SET bytes = excluded.bytes, messages = excluded.messages",
                (email, size),
            )
        else:
            connection.exec_driver_sql(
                "INSERT INTO mail_quota_usage (email, bytes, messages) VALUES (%s, %s, 1) "
                "ON DUPLICATE KEY UPDATE bytes = VALUES(bytes), messages = VALUES(messages)",
                (email, size),
            )


def listed(admin, query: str) -> list[str]:
    page = admin.get(f"/admin/accounts/?{query}", htmx=True)
    assert page.status_code == 200
    return re.findall(r'data-email="([^"]+)"', page.get_data(as_text=True))


@pytest.fixture
def mailboxes(app):
    """Four accounts whose usage order differs from their share order (and from their addresses)."""
    add_domain(app, "example.com")
    quotas = {"a@example.com": 100, "b@example.com": 10, "c@example.com": 0, "d@example.com": 1000}
    for email, quota in quotas.items():
        add_account(app, email, quota_mb=quota)
    # a: 50 MB of 100 (50 %), b: 9 MB of 10 (90 %), c: 70 MB unlimited, d: no usage row yet (0 of 1000).
    for email, size in {"a@example.com": 50 * MB, "b@example.com": 9 * MB, "c@example.com": 70 * MB}.items():
        dovecot_upsert(app, email, size)


def test_sort_by_usage_orders_by_bytes_used(mailboxes, admin):
    assert listed(admin, "sort=usage&dir=desc") == ["c@example.com", "a@example.com", "b@example.com", "d@example.com"]
    assert listed(admin, "sort=usage") == ["d@example.com", "b@example.com", "a@example.com", "c@example.com"]


def test_sort_by_percent_orders_by_share_and_puts_unlimited_last(mailboxes, admin):
    assert listed(admin, "sort=percent&dir=desc") == [
        "b@example.com",
        "a@example.com",
        "d@example.com",
        "c@example.com",
    ]


def test_dovecot_upsert_moves_the_account_in_the_usage_sorts(mailboxes, app, admin):
    dovecot_upsert(app, "d@example.com", 990 * MB)  # now the most used, and 99 % of its quota

    assert listed(admin, "sort=usage&dir=desc")[0] == "d@example.com"
    assert listed(admin, "sort=percent&dir=desc")[0] == "d@example.com"
    assert listed(admin, "near_quota=1") == ["b@example.com", "d@example.com"]

    dovecot_upsert(app, "d@example.com", 0)  # the mailbox was emptied

    assert listed(admin, "sort=usage&dir=desc")[-1] == "d@example.com"
    assert listed(admin, "near_quota=1") == ["b@example.com"]


def test_page_shows_the_usage_dovecot_wrote(mailboxes, app, admin):
    dovecot_upsert(app, "a@example.com", 75 * MB)

    page = admin.get("/admin/accounts/?q=a@example.com").get_data(as_text=True)

    assert "75.0 MB used (75 %)" in page


def test_account_added_again_shows_its_recorded_usage(mailboxes, app, admin):
    """Usage rows outlive deleted accounts: a re-created address starts with Dovecot's figure."""
    dovecot_upsert(app, "e@example.com", 5 * MB)  # a mailbox from before, still on disk
    add_account(app, "e@example.com", quota_mb=10)

    assert listed(admin, "sort=percent&dir=desc")[:2] == ["b@example.com", "e@example.com"]
