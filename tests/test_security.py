"""Security headers on every admin response (enumerated from the URL map, so new views are covered)."""

from __future__ import annotations

import re

import pytest

from tests.conftest import AdminClient
from tests.helpers import add_account, add_domain
from tests.test_auth import admin_urls

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


def directives(response) -> dict[str, list[str]]:
    policy = response.headers["Content-Security-Policy"]
    return {
        name: values
        for name, *values in (part.split() for part in policy.split(";") if part.strip())
    }


def assert_admin_headers(response, url: str) -> None:
    for name, value in HEADERS.items():
        assert response.headers.get(name) == value, (url, name)
    csp = directives(response)
    assert csp["frame-ancestors"] == ["'none'"], url
    assert "'unsafe-inline'" not in csp["script-src"], url
    assert "'unsafe-eval'" not in csp["script-src"], url
    assert csp["object-src"] == ["'none'"], url


def test_every_admin_page_sends_the_security_headers(app, admin):
    # Real rows behind Flask-Admin's ?id= pages, so edit/delete pages render instead of redirecting.
    ids = {
        "/admin/domains/": add_domain(app, "example.com"),
        "/admin/accounts/": add_account(app, "user@example.com"),
    }
    urls = [*admin_urls(app), "/admin/login"]
    assert "/admin/accounts/" in urls
    rendered = 0
    for url in urls:
        section = next((prefix for prefix in ids if url.startswith(prefix)), None)
        response = admin.get(url, query_string={"id": ids[section]} if section else None)
        assert response.status_code < 500, url
        assert_admin_headers(response, url)
        rendered += response.status_code == 200
    assert rendered >= 5  # the enumeration reached real pages, not only redirects


@pytest.mark.parametrize(
    "request_kind",
    ["logged out redirect", "login page", "htmx fragment", "failed login"],
)
def test_headers_on_every_kind_of_admin_answer(app, client, admin_user, request_kind):
    admin = AdminClient(client)
    if request_kind == "logged out redirect":
        response = client.get("/admin/accounts/")
        assert response.status_code == 302
    elif request_kind == "login page":
        response = client.get("/admin/login")
    elif request_kind == "htmx fragment":
        admin.login()
        response = admin.get("/admin/accounts/?q=x", htmx=True)
        assert response.status_code == 200
    else:
        response = admin.login(password="wrong")
        assert response.status_code == 401
    assert_admin_headers(response, request_kind)


def test_inline_scripts_carry_the_nonce_of_the_header(admin):
    response = admin.get("/admin/accounts/")
    nonce = re.search(r"'nonce-([^']+)'", response.headers["Content-Security-Policy"]).group(1)
    assert f'nonce="{nonce}"' in response.text  # Flask-Admin tags its scripts with it
    assert "onclick=" not in response.text
    other = admin.get("/admin/accounts/").headers["Content-Security-Policy"]
    assert f"'nonce-{nonce}'" not in other  # a fresh nonce per response


def test_static_files_stay_cacheable_and_other_urls_untouched(app, client):
    with client.get("/admin/static/admin/js/helpers.js") as static:
        assert static.status_code == 200
        assert static.headers.get("Cache-Control") != "no-store"
        assert static.headers["X-Content-Type-Options"] == "nosniff"
    webhook = client.post("/api/sync/account", json={})
    assert "Content-Security-Policy" not in webhook.headers
