"""Admin sessions: logout ends every copy of the cookie; an idle session expires."""

from __future__ import annotations

import time

import pytest

from opmail import ConfigError
from opmail.auth import SEEN_KEY
from tests.conftest import AdminClient, make_app


def copy_of(admin: AdminClient):
    """A second client holding the same session cookie (a stolen or left-behind copy)."""
    cookie = admin.client.get_cookie("session")
    other = admin.client.application.test_client()
    other.set_cookie(cookie.key, cookie.value)
    return other


def test_logout_ends_copies_of_the_session_too(admin):
    thief = copy_of(admin)
    assert thief.get("/admin/").status_code == 200
    assert admin.post("/admin/logout").status_code == 302
    assert admin.get("/admin/").status_code == 302
    assert thief.get("/admin/").status_code == 302
    assert thief.get("/admin/accounts/").location.startswith("/admin/login")


def test_logging_in_again_after_logout_works(admin):
    admin.post("/admin/logout")
    assert admin.login().status_code == 302
    assert admin.get("/admin/").status_code == 200


@pytest.mark.parametrize(("idle_seconds", "status"), [(29 * 60, 200), (31 * 60, 302)])
def test_idle_session_expires_after_30_minutes(admin, idle_seconds, status):
    with admin.client.session_transaction() as session:
        session[SEEN_KEY] = int(time.time()) - idle_seconds
    assert admin.get("/admin/").status_code == status


def test_each_request_restarts_the_idle_clock(admin):
    with admin.client.session_transaction() as session:
        session[SEEN_KEY] = int(time.time()) - 29 * 60
    assert admin.get("/admin/").status_code == 200
    with admin.client.session_transaction() as session:
        assert int(time.time()) - session[SEEN_KEY] < 5


@pytest.mark.parametrize("app_overrides", [{"OPMAIL_IDLE_MINUTES": "5"}])
def test_idle_minutes_is_configurable(admin):
    with admin.client.session_transaction() as session:
        session[SEEN_KEY] = int(time.time()) - 6 * 60
    assert admin.get("/admin/").status_code == 302


@pytest.mark.parametrize("value", ["0", "-5", "ten", "1441"])
def test_bad_idle_minutes_refuses_to_start(tmp_path, value):
    with pytest.raises(ConfigError, match="OPMAIL_IDLE_MINUTES must be a whole number of minutes"):
        make_app(f"sqlite:///{tmp_path}/x.db", tmp_path, OPMAIL_IDLE_MINUTES=value)
