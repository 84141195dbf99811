import pytest
from flask import url_for
from sqlalchemy import select

from opmail.db import get_session
from opmail.models import Admin
from tests.conftest import ADMIN_PASSWORD, AdminClient, csrf_from

LOGIN_STEPS = {"opmail_auth.login", "opmail_auth.login_code"}  # open to strangers by design


def admin_urls(app):
    """Every GET route under /admin except the login steps and static: enumerated, so new views are covered."""
    urls = set()
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if not rule.rule.startswith("/admin") or "GET" not in rule.methods:
                continue
            if rule.endpoint in LOGIN_STEPS or rule.endpoint.endswith(".static"):
                continue
            urls.add(url_for(rule.endpoint, **dict.fromkeys(rule.arguments, 1)))
    return sorted(urls)


def test_every_admin_url_redirects_to_login_when_logged_out(app, client):
    urls = admin_urls(app)
    assert "/admin/" in urls
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.location.startswith("/admin/login?next="), url


def test_htmx_request_when_logged_out_gets_hx_redirect(client, app):
    response = client.get("/admin/", headers={"HX-Request": "true"})
    assert response.headers["HX-Redirect"].startswith("/admin/login")


def test_login_with_wrong_password_fails(client, admin_user):
    response = AdminClient(client).login(password="wrong")
    assert response.status_code == 401
    assert "Wrong username or password." in response.text
    assert client.get("/admin/").status_code == 302


def test_login_with_unknown_user_fails_the_same_way(client, admin_user):
    response = AdminClient(client).login(username="nobody")
    assert response.status_code == 401
    assert "Wrong username or password." in response.text


def test_login_shows_admin_home(admin):
    response = admin.get("/admin/")
    assert response.status_code == 200
    assert "Dashboard" in response.text
    assert "Log out" in response.text


def test_login_without_csrf_token_is_400(client, admin_user):
    response = client.post("/admin/login", data={"username": "admin", "password": ADMIN_PASSWORD})
    assert response.status_code == 400
    assert client.get("/admin/").status_code == 302


def test_logout_needs_csrf_and_ends_the_session(admin):
    assert admin.client.post("/admin/logout").status_code == 400
    assert admin.get("/admin/").status_code == 200
    assert admin.post("/admin/logout").status_code == 302
    assert admin.get("/admin/").status_code == 302


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil.example"])
def test_login_ignores_off_site_next(client, admin_user, target):
    page = client.get("/admin/login")
    response = client.post(
        "/admin/login?next=" + target,
        data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": csrf_from(page.text)},
    )
    assert response.location == "/admin/"


def test_login_follows_on_site_next(client, admin_user):
    page = client.get("/admin/login")
    response = client.post(
        "/admin/login?next=/admin/accounts/",
        data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": csrf_from(page.text)},
    )
    assert response.location == "/admin/accounts/"


def test_create_admin_command(runner, client):
    result = runner.invoke(args=["opmail", "create-admin", "ops", "--password-stdin"], input="a good password\n")
    assert result.exit_code == 0 and "created" in result.output
    assert AdminClient(client).login("ops", "a good password").status_code == 302


def test_first_admin_prints_a_working_password_once(runner, client):
    result = runner.invoke(args=["opmail", "first-admin"])
    password = result.output.split("Password: ")[1].split()[0]
    assert AdminClient(client).login("admin", password).status_code == 302
    again = runner.invoke(args=["opmail", "first-admin"])
    assert "Password:" not in again.output


def test_first_admin_names_the_port_make_run_serves_on(runner):
    result = runner.invoke(args=["opmail", "first-admin", "--port", "5001"])
    assert "URL:      http://127.0.0.1:5001/admin/" in result.output
    assert ".venv/bin/flask --app app opmail create-admin admin" in result.output


# --- Admin names are exact (issue 15) ----------------------------------------------------------------

def create_admin(runner, name: str, password: str):
    return runner.invoke(args=["opmail", "create-admin", name, "--password-stdin"], input=password + "\n")


@pytest.mark.parametrize(
    "typed",
    ["bób", "bob\u200b", "b\u200dob", "bo\u034fb", "bob\u00ad", "bobb", "b0b"],
    ids=["accent", "zero-width space", "zero-width joiner", "grapheme joiner", "soft hyphen", "longer", "zero"],
)
def test_a_name_that_only_looks_like_bob_does_not_log_in_as_bob(app, runner, client, typed):
    """On MariaDB's default collation all of these were bob; the column now compares in binary."""
    assert create_admin(runner, "bob", "bobs password").exit_code == 0
    response = AdminClient(client).login(typed, "bobs password")
    assert response.status_code == 401
    assert "Wrong username or password." in response.text
    assert client.get("/admin/").status_code == 302


@pytest.mark.parametrize("typed", ["bob", "BOB", "Bob", "\uff42\uff4f\uff42", " bob "], ids=["as is", "upper", "title", "full-width", "spaces"])
def test_the_canonical_spellings_of_a_name_are_that_name(app, runner, client, typed):
    """NFKC and lower-case, at creation and at login: one name, one admin."""
    assert create_admin(runner, "bob", "bobs password").exit_code == 0
    assert AdminClient(client).login(typed, "bobs password").status_code == 302


@pytest.mark.parametrize("typed", ["BOB", "\uff42\uff4f\uff42", "Bob"])
def test_create_admin_refuses_another_spelling_of_an_existing_name(app, runner, client, typed):
    assert create_admin(runner, "bob", "bobs password").exit_code == 0
    result = create_admin(runner, typed, "an attackers password")
    assert result.exit_code == 1
    assert f"{typed!r} is the same name as the existing admin 'bob'" in result.output
    assert "type its name exactly: bob" in result.output
    # bob's password is unchanged, and no second admin was made.
    assert AdminClient(client).login("bob", "an attackers password").status_code == 401
    assert AdminClient(client).login("bob", "bobs password").status_code == 302
    with app.app_context():
        assert get_session().scalars(select(Admin.username)).all() == ["bob"]


def test_create_admin_with_the_exact_name_still_sets_the_password(app, runner, client):
    assert create_admin(runner, "bob", "bobs password").exit_code == 0
    result = create_admin(runner, "bob", "a new password")
    assert result.exit_code == 0 and "Admin 'bob' password changed." in result.output
    assert AdminClient(client).login("bob", "a new password").status_code == 302


def test_a_name_with_an_accent_is_another_admin(app, runner, client):
    """bób is not bob: on utf8mb4_unicode_ci the unique index refused it (or it changed bob)."""
    assert create_admin(runner, "bob", "bobs password").exit_code == 0
    result = create_admin(runner, "Bób", "other password")
    assert result.exit_code == 0 and "Admin 'bób' created." in result.output
    assert AdminClient(client).login("bób", "other password").status_code == 302
    assert AdminClient(client).login("bob", "other password").status_code == 401
    with app.app_context():
        assert sorted(get_session().scalars(select(Admin.username))) == ["bob", "bób"]


@pytest.mark.parametrize("typed", ["bob\u200b", "\u3164bob", "bob\x00"], ids=["zero-width space", "Hangul filler", "NUL"])
def test_create_admin_refuses_invisible_characters(app, runner, typed):
    result = create_admin(runner, typed, "a good password")
    assert result.exit_code == 1
    assert "The username must not contain control or invisible characters." in result.output
    with app.app_context():
        assert get_session().scalars(select(Admin.username)).all() == []
