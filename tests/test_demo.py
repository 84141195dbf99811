"""``flask opmail seed-demo``: bulk demo data that logs in, shows in the list, and is never doubled."""

from __future__ import annotations

import sqlalchemy as sa

from opmail.models import MailAccount, MailDomain, MailQuotaUsage
from opmail.passwords import verify_password
from tests.helpers import add_domain, rows, snapshot


def seed(runner, *args):
    return runner.invoke(args=["opmail", "seed-demo", *args])


def test_seed_demo_adds_accounts_spread_over_domains(app, runner):
    result = seed(runner, "--accounts", "25", "--domains", "3", "--password", "demo-pass-1")

    assert result.exit_code == 0, result.output
    assert "Added 25 accounts in 3 demo domains." in result.output
    assert "demo-pass-1" in result.output
    assert rows(app, sa.select(MailDomain.domain).order_by(MailDomain.domain)) == [
        ("demo00001.example",), ("demo00002.example",), ("demo00003.example",)
    ]
    per_domain = rows(
        app, sa.select(MailAccount.domain_id, sa.func.count()).group_by(MailAccount.domain_id)
    )
    assert sorted(count for _, count in per_domain) == [8, 8, 9]
    accounts = rows(app, sa.select(MailAccount.email, MailAccount.password, MailAccount.is_active))
    assert {email for email, _, _ in accounts} == {
        f"user{n}@demo{n % 3 + 1:05d}.example" for n in range(1, 26)
    }
    assert all(verify_password("demo-pass-1", stored) for _, stored, _ in accounts)
    assert [email for email, _, active in accounts if not active] == ["user20@demo00003.example"]
    assert rows(app, sa.select(sa.func.count()).select_from(MailQuotaUsage)) == [(25,)]


def test_seed_demo_prints_a_random_password_that_works(app, runner):
    result = seed(runner, "--accounts", "2", "--domains", "5")

    assert result.exit_code == 0, result.output
    assert "Added 2 accounts in 2 demo domains." in result.output
    password = result.output.rsplit(": ", 1)[1].strip()
    (stored,) = rows(app, sa.select(MailAccount.password).where(MailAccount.email == "user1@demo00002.example"))[0]
    assert verify_password(password, stored)


def test_seed_demo_refuses_when_demo_data_exists(app, runner):
    add_domain(app, "keep.example.org")
    assert seed(runner, "--accounts", "4", "--domains", "2").exit_code == 0
    before = snapshot(app)

    result = seed(runner, "--accounts", "4", "--domains", "2")

    assert result.exit_code == 1
    assert "2 demo domains (demo….example) already exist: nothing was added." in result.output
    assert snapshot(app) == before


def test_seed_demo_shows_in_the_accounts_list(app, runner, admin):
    seed(runner, "--accounts", "60", "--domains", "2")

    page = admin.get("/admin/accounts/?q=user5").get_data(as_text=True)

    assert "11 accounts" in page  # user5, user50 … user59
    assert "user5@demo00002.example" in page
