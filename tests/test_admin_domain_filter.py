"""The lists' domain filter (issue 19): by name in the URL, a plain dropdown up to 200 domains, a
typeahead above (its endpoint behind the view's login), and a text field that filters without JS."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from opmail.db import get_session
from opmail.models import MailAccount, MailAlias, MailDomain, utcnow
from opmail.queries import DOMAIN_SELECT_MAX
from tests.helpers import add_account, add_domain

ACCOUNTS = "/admin/accounts/"
ALIASES = "/admin/aliases/"
LISTS = [ACCOUNTS, ALIASES]


def emails_on(html: str) -> list[str]:
    return re.findall(r'<tr data-email="([^"]+)"', html)


def aliases_on(html: str) -> list[str]:
    return re.findall(r'<tr data-alias="([^"]+)"', html)


def options_on(html: str) -> list[str]:
    return re.findall(r'role="option" aria-selected="false" data-value="([^"]+)"', html)


def filter_form(html: str) -> str:
    """The list's GET filter form (role="search"), as HTML."""
    start = html.index('role="search"')
    return html[html.rindex("<form", 0, start) : html.index("</form>", start)]


def many_domains(app, count: int, prefix: str = "zz") -> None:
    """``count`` more domains ``zz0000.example`` … in one insert (the rules would take seconds)."""
    with app.app_context():
        db = get_session()
        db.add_all(MailDomain(domain=f"{prefix}{n:04}.example") for n in range(count))
        db.commit()


@pytest.fixture
def mail(app):
    """Two ASCII domains and one IDN (bücher.de, stored xn--bcher-kva.de), an account and alias each."""
    for domain in ("example.com", "other.org", "bücher.de"):
        add_domain(app, domain)
    for email in ("jane@example.com", "bob@example.com", "carol@other.org", "anna@bücher.de"):
        add_account(app, email)
    with app.app_context():
        db = get_session()
        ids = dict(db.execute(sa.select(MailDomain.domain, MailDomain.id)).all())
        db.add_all(
            [
                MailAlias(domain_id=ids["example.com"], alias_email="team@example.com", destination_email="jane@example.com"),
                MailAlias(domain_id=ids["xn--bcher-kva.de"], alias_email="info@xn--bcher-kva.de", destination_email="anna@xn--bcher-kva.de"),
            ]
        )
        db.commit()


# --- the filter, by name ------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["example.com", "EXAMPLE.com", " example.com "])
def test_the_accounts_list_filters_by_domain_name(app, admin, mail, typed):
    assert emails_on(admin.get(ACCOUNTS, query_string={"domain": typed}).text) == ["bob@example.com", "jane@example.com"]


@pytest.mark.parametrize("typed", ["bücher.de", "BÜCHER.DE", "xn--bcher-kva.de"])
def test_an_international_domain_filters_by_either_form_and_shows_in_unicode(app, admin, mail, typed):
    page = admin.get(ACCOUNTS, query_string={"domain": typed}).text
    assert emails_on(page) == ["anna@xn--bcher-kva.de"]
    assert 'value="bücher.de" selected' in page  # the dropdown (3 domains) shows the Unicode name
    fragment = admin.get(ALIASES, query_string={"domain": typed}, htmx=True)
    assert aliases_on(fragment.text) == ["info@xn--bcher-kva.de"]
    # The URL keeps the name as shown: the one a no-JS submit of the field sends too.
    assert fragment.headers["HX-Push-Url"] == f"{ALIASES}?domain={quote('bücher.de')}"


@pytest.mark.parametrize("typed", ["abc", "exa", "nowhere.org", "1", str(2**64), "a" * 5000, "ex\x00.com", ".."])
@pytest.mark.parametrize("url", LISTS)
def test_a_name_that_is_no_domain_matches_nothing(app, admin, mail, typed, url):
    response = admin.get(url, query_string={"domain": typed})
    assert response.status_code == 200
    assert emails_on(response.text) == aliases_on(response.text) == []
    assert re.search(r">\s*0 (accounts|aliases)\b", response.text)


def test_the_domain_and_the_search_combine_and_the_url_keeps_both(app, admin, mail):
    fragment = admin.get(ACCOUNTS + "?q=j&domain=Example.com&status=", htmx=True)
    assert emails_on(fragment.text) == ["jane@example.com"]
    assert fragment.headers["HX-Push-Url"] == f"{ACCOUNTS}?q=j&domain=example.com"


# --- a dropdown up to 200 domains, a typeahead above ----------------------------------------------


@pytest.mark.parametrize("url", LISTS)
def test_up_to_200_domains_the_filter_is_a_dropdown_of_them_all(app, admin, mail, url):
    many_domains(app, DOMAIN_SELECT_MAX - 3)
    form = filter_form(admin.get(url + "?domain=zz0042.example").text)
    select = re.search(r'<select id="[^"]+" [^>]*name="domain".*?</select>', form, re.S).group(0)
    assert len(re.findall(r'<option value="[^"]+"', select)) == DOMAIN_SELECT_MAX
    assert '<option value="">All domains</option>' in select
    assert '<option value="zz0042.example" selected>' in select
    assert 'role="combobox"' not in form


@pytest.mark.parametrize("url", LISTS)
def test_above_200_domains_the_filter_is_a_labelled_text_field_in_the_get_form(app, admin, mail, url):
    many_domains(app, DOMAIN_SELECT_MAX)
    page = admin.get(url + "?domain=zz0042.example")
    form = filter_form(page.text)
    assert 'method="get"' in form
    assert "<option value=\"zz" not in page.text  # no domain is listed up front
    field = re.search(r'<input id="([^"]+)"[^>]*name="domain"[^>]*>', form)
    assert field, form
    tag = field.group(0)
    assert 'value="zz0042.example"' in tag  # the picker shows the domain of the URL
    assert 'role="combobox"' in tag and 'aria-expanded="false"' in tag
    assert f'aria-controls="{field.group(1)}-options"' in tag and 'role="listbox"' in form
    assert f'<label class="sr-only" for="{field.group(1)}">Domain</label>' in form
    assert f'hx-get="{url}domain-options/"' in tag
    assert 'hx-push-url="false"' in tag  # typing fetches choices, not a new list URL


@pytest.mark.parametrize("url", LISTS)
def test_the_page_no_longer_grows_with_the_domains(app, admin, mail, url):
    many_domains(app, DOMAIN_SELECT_MAX + 1)
    at_201 = len(admin.get(url).text)
    many_domains(app, 3000, prefix="yy")
    at_3201 = len(admin.get(url).text)
    assert abs(at_3201 - at_201) < 50, (at_201, at_3201)


def test_without_javascript_the_typed_name_filters(app, admin, mail):
    """What the GET form sends when the text field is submitted by Enter (no JS): every field."""
    many_domains(app, DOMAIN_SELECT_MAX)
    page = admin.get(ACCOUNTS + "?q=&domain=other.org&status=&twofa=")
    assert emails_on(page.text) == ["carol@other.org"]
    assert re.search(r'<input id="[^"]+"[^>]*name="domain" value="other.org"', filter_form(page.text))
    aliases = admin.get(ALIASES + "?q=&domain=bücher.de")
    assert aliases_on(aliases.text) == ["info@xn--bcher-kva.de"]
    assert 'value="bücher.de"' in filter_form(aliases.text)


# --- the typeahead's endpoint ------------------------------------------------------------------


@pytest.mark.parametrize("url", LISTS)
def test_the_endpoint_answers_the_first_20_domains_that_start_with_the_prefix(app, admin, mail, url):
    many_domains(app, 300)
    response = admin.get(url + "domain-options/?domain=zz01", htmx=True)
    assert response.status_code == 200 and "<html" not in response.text
    assert options_on(response.text) == [f"zz{n:04}.example" for n in range(100, 120)]
    assert options_on(admin.get(url + "domain-options/?domain=ZZ0299", htmx=True).text) == ["zz0299.example"]
    assert options_on(admin.get(url + "domain-options/?domain=", htmx=True).text)[:3] == [
        "example.com", "other.org", "bücher.de"  # stored order: xn--bcher-kva.de
    ]
    assert options_on(admin.get(url + "domain-options/?domain=other.o", htmx=True).text) == ["other.org"]


@pytest.mark.parametrize(
    ("typed", "found"),
    [
        ("bü", ["bücher.de", "bücherei.example"]),
        ("BÜCHER.", ["bücher.de"]),
        ("bücher.d", ["bücher.de"]),
        ("b", ["bus.example", "bücher.de", "bücherei.example"]),  # stored order: xn--b…
        ("xn--bcher-", ["bücher.de"]),  # the stored form, typed as such
        ("ü", ["über.example"]),  # no ASCII letter before the first non-ASCII one
        ("例", ["例え.jp"]),
        ("mail.bü", ["mail.bücher.de"]),
        ("bx", []),
    ],
)
def test_the_endpoint_finds_unicode_domains_typed_in_unicode(app, admin, mail, typed, found):
    for domain in ("bücherei.example", "bus.example", "über.example", "例え.jp", "mail.bücher.de"):
        add_domain(app, domain)
    response = admin.get(ACCOUNTS + "domain-options/", query_string={"domain": typed}, htmx=True)
    assert options_on(response.text) == found
    if not found:
        assert f"No domain starts with “{typed}”." in response.text


@pytest.mark.parametrize(
    "typed", ["a" * 5000, "%00", "..", ".", "a..b", "a+b", "%25", "_", "*", "%5C", "ex%E2%80%8Bample", "%ED%A0%80", "%FF"]
)
def test_the_endpoint_takes_any_text_without_an_error(app, admin, mail, typed):
    response = admin.get(f"{ACCOUNTS}domain-options/?domain={typed}", htmx=True)
    assert response.status_code == 200
    assert options_on(response.text) == []


@pytest.mark.parametrize("url", LISTS)
def test_the_endpoint_is_behind_the_login(app, client, mail, url):
    response = client.get(url + "domain-options/?domain=ex")
    assert response.status_code == 302 and "/admin/login" in response.location
    assert "example.com" not in response.text
    htmx = client.get(url + "domain-options/?domain=ex", headers={"HX-Request": "true"})
    assert "/admin/login" in htmx.headers["HX-Redirect"] and "example.com" not in htmx.text


# --- Admin → Domains: counts for the page's domains only --------------------------------------------


def test_the_domains_page_counts_accounts_and_aliases_of_its_domains(app, admin, mail):
    with app.app_context():
        db = get_session()
        db.scalar(sa.select(MailAccount).where(MailAccount.email == "bob@example.com")).deleted_at = utcnow()
        db.commit()
    page = admin.get("/admin/domains/").text
    counts = {
        name: (int(accounts), int(aliases))
        for name, accounts, aliases in re.findall(
            r'<tr data-domain="([^"]+)">.*?data-accounts>(\d+)</a></td>\s*<td>(\d+)</td>', page, re.S
        )
    }
    assert counts == {"xn--bcher-kva.de": (1, 1), "example.com": (1, 1), "other.org": (1, 0)}, counts
    # The account count links to the accounts list, filtered by the domain's name.
    assert f'href="{ACCOUNTS}?domain={quote("bücher.de")}" data-accounts>1<' in page
