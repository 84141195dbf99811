"""MAIL_ADMIN_PREFIX moves the admin area and its login; MAIL_ADMIN_IPS keeps other addresses out."""

from __future__ import annotations

import pytest

from opmail import ConfigError
from tests.conftest import ADMIN_PASSWORD, csrf_from, make_app
from tests.helpers import SYNC_SECRET, start_up_errors, sync_call

PREFIX = "/ops/mail"
ALLOWED = "192.0.2.10"


@pytest.fixture
def app_overrides():
    return {
        "MAIL_ADMIN_PREFIX": PREFIX,
        "MAIL_ADMIN_IPS": f"{ALLOWED}, 10.1.0.0/16,2001:db8::/32",
        "MAIL_SYNC_SECRET": SYNC_SECRET,
    }


def client_at(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def log_in(client):
    page = client.get(f"{PREFIX}/login")
    return client.post(
        f"{PREFIX}/login",
        data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": csrf_from(page.text)},
    )


# --- the prefix ------------------------------------------------------------------------------------


def test_prefix_moves_the_login_and_the_admin(app, admin_user):
    client = client_at(app, ALLOWED)
    stranger = client.get(f"{PREFIX}/accounts/")
    assert stranger.status_code == 302
    assert stranger.location.startswith(f"{PREFIX}/login?next=")
    logged_in = log_in(client)
    assert logged_in.status_code == 302 and logged_in.location == f"{PREFIX}/"
    page = client.get(f"{PREFIX}/accounts/")
    assert page.status_code == 200
    assert f'action="{PREFIX}/logout"' in page.text  # the log-out form follows the prefix too
    assert client.get(f"{PREFIX}/").status_code == 200


@pytest.mark.parametrize("url", ["/admin/", "/admin/login", "/admin/accounts/"])
def test_the_old_urls_are_gone(app, url):
    assert client_at(app, ALLOWED).get(url).status_code == 404


# --- the addresses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address", [ALLOWED, "10.1.0.1", "10.1.255.254", "2001:db8::1", "2001:db8:ffff::9", "::ffff:192.0.2.10"]
)
def test_listed_addresses_and_networks_get_in(app, address):
    assert client_at(app, address).get(f"{PREFIX}/login").status_code == 200


@pytest.mark.parametrize("address", ["192.0.2.11", "10.2.0.1", "127.0.0.1", "2001:db9::1", "::1"])
@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", f"{PREFIX}/login"),
        ("POST", f"{PREFIX}/login"),  # refused before the CSRF check or the password
        ("GET", f"{PREFIX}/"),
        ("GET", f"{PREFIX}/accounts/"),
        ("GET", f"{PREFIX}/no-such-page"),
    ],
)
def test_other_addresses_get_a_plain_403(app, admin_user, address, method, url):
    response = client_at(app, address).open(
        url, method=method, data={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 403
    assert "The mail admin cannot be opened from your address." in response.text
    assert "Set-Cookie" not in response.headers  # not logged in


def test_a_session_from_an_allowed_address_does_not_open_the_admin_elsewhere(app, admin_user):
    client = client_at(app, ALLOWED)
    assert log_in(client).status_code == 302
    client.environ_base["REMOTE_ADDR"] = "198.51.100.7"  # the same cookie, another address
    assert client.get(f"{PREFIX}/accounts/").status_code == 403


def test_the_webhook_is_not_restricted(app):
    agent = client_at(app, "198.51.100.20")
    response = sync_call(agent, {"action": "delete", "email": "jane@example.com"})
    assert response.status_code == 200 and response.json == {"status": "ok"}
    # Static files are not the admin area either.
    with agent.get("/static/opmail/opmail.js") as script:
        assert script.status_code == 200


# --- bad settings stop start-up --------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["admin", "/admin/", "/", "", "/ad min", "/a?b", "/../etc", "/x//y", "/ädmin"])
def test_bad_prefix_refuses_to_start(tmp_path, prefix):
    with pytest.raises(ConfigError, match=r"^MAIL_ADMIN_PREFIX must be a path like /admin or /ops/mail"):
        make_app(f"sqlite:///{tmp_path}/x.db", tmp_path, MAIL_ADMIN_PREFIX=prefix)


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("10.0.0.1/8", "has host bits set"),
        ("10.0.0.0/33", "does not appear to be an IPv4 or IPv6"),
        ("300.1.1.1", "does not appear to be an IPv4 or IPv6"),
        ("example.com", "does not appear to be an IPv4 or IPv6"),
        ("2001:db8::/129", "does not appear to be an IPv4 or IPv6"),
    ],
)
def test_bad_address_entry_refuses_to_start(tmp_path, entry, why):
    with pytest.raises(ConfigError, match=rf"^MAIL_ADMIN_IPS: '{entry}' is not an IP address or network \(.*{why}"):
        make_app(f"sqlite:///{tmp_path}/x.db", tmp_path, MAIL_ADMIN_IPS=f"192.0.2.1, {entry}")


def test_bad_address_in_the_environment_stops_flask_with_one_line(tmp_path):
    assert start_up_errors(tmp_path, MAIL_ADMIN_IPS="10.0.0.1/8") == [
        "opmail: MAIL_ADMIN_IPS: '10.0.0.1/8' is not an IP address or network (10.0.0.1/8 has host bits set)."
    ]
