"""Admin → Dashboard: each figure counts what the list behind its link shows."""

from __future__ import annotations

import html
import re

import pytest

from opmail import demo
from opmail.db import get_session
from opmail.models import MailAccount, MailQuotaUsage, UserTwoFactor, utcnow
from tests.helpers import add_account, add_domain

MB = 1024 * 1024


def emails_on(page: str) -> list[str]:
    return re.findall(r'<tr data-email="([^"]+)"', page)


def figure_link(page: str, key: str) -> tuple[int, str]:
    """The figure ``key`` on the dashboard and the URL its card links to."""
    match = re.search(
        rf'<a class="card[^"]*" href="([^"]+)">\s*<div class="card-body">\s*'
        rf'<div class="display-4" data-figure="{key}">([\d,]+)</div>',
        page,
    )
    assert match, f"no {key} figure"
    return int(match.group(2).replace(",", "")), html.unescape(match.group(1))


@pytest.fixture
def mailboxes(app):
    """Accounts that each count towards a different set of figures."""
    add_domain(app, "example.com")
    add_domain(app, "other.org")
    ids = {
        email: add_account(app, email, quota_mb=quota)
        for email, quota in [
            ("full@example.com", 100),  # 95 %, 2FA on
            ("half@example.com", 100),  # 50 %, suspended
            ("unlimited@other.org", 0),  # lots used, but no limit
            ("edge@other.org", 10),  # exactly 90 %, 2FA set-up not finished
            ("gone@example.com", 10),  # deleted by the Panel: counts nowhere
        ]
    }
    with app.app_context():
        db = get_session()
        db.add_all([
            MailQuotaUsage(email="full@example.com", bytes=95 * MB),
            MailQuotaUsage(email="half@example.com", bytes=50 * MB),
            MailQuotaUsage(email="unlimited@other.org", bytes=9000 * MB),
            MailQuotaUsage(email="edge@other.org", bytes=9 * MB),
            MailQuotaUsage(email="gone@example.com", bytes=10 * MB),
            UserTwoFactor(email="full@example.com", secret="s", enabled_at=utcnow()),
            UserTwoFactor(email="edge@other.org", secret="s", enabled_at=None),
            UserTwoFactor(email="gone@example.com", secret="s", enabled_at=utcnow()),
        ])
        db.get(MailAccount, ids["half@example.com"]).is_active = False
        db.get(MailAccount, ids["gone@example.com"]).deleted_at = utcnow()
        db.commit()
    return ids


@pytest.mark.parametrize(
    ("key", "count", "listed"),
    [
        ("active", 3, ["edge@other.org", "full@example.com", "unlimited@other.org"]),
        ("suspended", 1, ["half@example.com"]),
        ("two_factor", 1, ["full@example.com"]),
        ("near_quota", 2, ["edge@other.org", "full@example.com"]),
    ],
)
def test_each_account_figure_links_to_the_accounts_it_counts(admin, mailboxes, key, count, listed):
    figure, url = figure_link(admin.get("/admin/").text, key)
    assert figure == count
    page = admin.get(url)
    assert page.status_code == 200
    assert emails_on(page.text) == listed


def test_domains_figure_links_to_the_domains_list(admin, mailboxes):
    figure, url = figure_link(admin.get("/admin/").text, "domains")
    assert (figure, url) == (2, "/admin/domains/")


def test_two_factor_off_filter_lists_everyone_without_finished_enrolment(admin, mailboxes):
    page = admin.get("/admin/accounts/?twofa=off")
    assert emails_on(page.text) == ["edge@other.org", "half@example.com", "unlimited@other.org"]
    assert '<option value="off" selected>' in page.text


def test_filters_survive_in_pager_links_and_bad_values_fall_back(admin, mailboxes):
    assert emails_on(admin.get("/admin/accounts/?twofa=maybe&near_quota=yes").text) == [
        "edge@other.org", "full@example.com", "half@example.com", "unlimited@other.org"
    ]
    fragment = admin.get("/admin/accounts/?twofa=on&near_quota=1&q=", htmx=True)
    assert fragment.headers["HX-Push-Url"] == "/admin/accounts/?twofa=on&near_quota=1"
    assert emails_on(fragment.text) == ["full@example.com"]


def test_empty_dashboard_shows_zeros(admin):
    page = admin.get("/admin/").text
    assert [figure_link(page, key)[0] for key in ("domains", "active", "suspended", "two_factor", "near_quota")] == [0] * 5


def test_figures_have_thousands_separators(app, admin):
    with app.app_context():
        demo.seed_demo(1200, 2, "{PLAIN}demo")  # every 20th demo account is suspended

    page = admin.get("/admin/").get_data(as_text=True)

    assert 'data-figure="active">1,140</div>' in page


# --- Effective status: an account of a disabled domain (issue 15) ---------------------------------

@pytest.fixture
def parked(app, mailboxes):
    """The mailboxes plus off.example, disabled: one account active in itself, one suspended."""
    from opmail.models import MailDomain

    domain_id = add_domain(app, "off.example")
    ids = {email: add_account(app, email) for email in ("parked@off.example", "both@off.example")}
    with app.app_context():
        db = get_session()
        db.get(MailDomain, domain_id).is_active = False
        db.get(MailAccount, ids["both@off.example"]).is_active = False
        db.commit()
    return {**mailboxes, **ids}


@pytest.mark.parametrize(
    ("key", "count", "listed"),
    [
        # Dovecot refuses parked@off.example: it is not counted (or listed) as active.
        ("active", 3, ["edge@other.org", "full@example.com", "unlimited@other.org"]),
        # An account's own suspension shows before its domain's.
        ("suspended", 2, ["both@off.example", "half@example.com"]),
        ("domain_disabled", 1, ["parked@off.example"]),
    ],
)
def test_an_account_of_a_disabled_domain_is_not_counted_active(admin, parked, key, count, listed):
    figure, url = figure_link(admin.get("/admin/").text, key)
    assert figure == count
    page = admin.get(url)
    assert emails_on(page.text) == listed


def status_badge(page: str, email: str) -> str:
    row = re.search(rf'<tr data-email="{re.escape(email)}".*?</tr>', page, re.S).group(0)
    return re.findall(r'<span class="badge[^"]*"[^>]*>([^<]+)</span>', row)[-1]


def test_the_list_shows_domain_disabled_as_the_status(admin, parked):
    page = admin.get("/admin/accounts/").text
    assert status_badge(page, "parked@off.example") == "Domain disabled"
    assert status_badge(page, "both@off.example") == "Suspended"
    assert status_badge(page, "full@example.com") == "Active"
    assert re.search(r"<option value=\"domain_disabled\"\s*>Domain disabled</option>", page)
    filtered = admin.get("/admin/accounts/?status=domain_disabled").text
    assert "<option value=\"domain_disabled\" selected>Domain disabled</option>" in filtered
    assert emails_on(filtered) == ["parked@off.example"]


def test_the_account_page_says_its_domain_is_disabled(admin, parked):
    page = admin.get(f"/admin/accounts/edit/?id={parked['parked@off.example']}").text
    heading = re.search(r"<h2.*?</h2>", page, re.S).group(0)
    assert "Domain disabled" in heading and "Active" not in heading
    assert "Its domain is disabled: this account cannot log in" in page
    live = admin.get(f"/admin/accounts/edit/?id={parked['full@example.com']}").text
    assert "Its domain is disabled" not in live
    assert ">Active</span>" in re.search(r"<h2.*?</h2>", live, re.S).group(0)


def test_no_disabled_domain_lists_nothing_as_domain_disabled(admin, mailboxes):
    page = admin.get("/admin/accounts/?status=domain_disabled").text
    assert emails_on(page) == []
    assert figure_link(admin.get("/admin/").text, "domain_disabled")[0] == 0
