"""The per-admin back-off after wrong passwords: login, the delete dialogs, `flask opmail unlock-admin`."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from opmail.db import get_session
from opmail.models import Admin, MailAccount, utcnow
from tests.conftest import ADMIN_PASSWORD, AdminClient
from tests.helpers import rows, snapshot

LOCKED = "Too many failed attempts: try again in {} s."
WRONG = "Wrong username or password."


def lock_state(app) -> tuple[int, object]:
    return tuple(rows(app, sa.select(Admin.failed_logins, Admin.locked_until))[0])


def set_lock_state(app, failed: int, locked_for: int | None = None) -> None:
    """``failed`` wrong passwords so far, the lock ending in ``locked_for`` seconds (None: no lock)."""
    with app.app_context():
        admin = get_session().scalar(sa.select(Admin))
        admin.failed_logins = failed
        admin.locked_until = None if locked_for is None else utcnow() + timedelta(seconds=locked_for)
        get_session().commit()


def test_fifth_wrong_password_locks_and_the_right_one_waits(app, client, admin_user):
    user = AdminClient(client)
    for _ in range(4):
        response = user.login(password="wrong")
        assert response.status_code == 401 and WRONG in response.text
    fifth = user.login(password="wrong")
    assert fifth.status_code == 429
    assert LOCKED.format(30) in fifth.text
    # While locked, even the right password is not tried: no session.
    right = user.login()
    assert right.status_code == 429 and "Too many failed attempts: try again in" in right.text
    assert client.get("/admin/").status_code == 302
    assert lock_state(app)[0] == 5


@pytest.mark.parametrize(
    ("failed_before", "status", "message"),
    [
        (0, 401, WRONG),
        (3, 401, WRONG),
        (4, 429, LOCKED.format(30)),  # the fifth wrong one in a row
        (5, 429, LOCKED.format(60)),  # each one after a lock doubles it
        (6, 429, LOCKED.format(120)),
        (10, 429, LOCKED.format(1920)),
        (11, 429, LOCKED.format(3600)),  # at most an hour
        (500, 429, LOCKED.format(3600)),
    ],
)
def test_back_off_grows_with_each_wrong_password_after_a_lock(
    app, client, admin_user, failed_before, status, message
):
    set_lock_state(app, failed_before, locked_for=-1)  # any earlier lock is over
    response = AdminClient(client).login(password="wrong")
    assert response.status_code == status
    assert message in response.text
    assert lock_state(app)[0] == failed_before + 1


def test_right_password_after_the_lock_logs_in_and_forgets_the_failures(app, client, admin_user):
    set_lock_state(app, 7, locked_for=-1)
    assert AdminClient(client).login().status_code == 302
    assert lock_state(app) == (0, None)


def test_remaining_wait_counts_down(app, client, admin_user):
    set_lock_state(app, 5, locked_for=42)
    response = AdminClient(client).login()
    assert response.status_code == 429
    assert LOCKED.format(42) in response.text or LOCKED.format(41) in response.text


def test_unknown_username_is_never_locked(app, client, admin_user):
    user = AdminClient(client)
    for _ in range(7):
        response = user.login(username="nobody", password="wrong")
        assert response.status_code == 401 and WRONG in response.text
    assert lock_state(app) == (0, None)  # the real admin is untouched


def test_unlock_admin_command(app, client, admin_user, runner):
    set_lock_state(app, 9, locked_for=3000)
    result = runner.invoke(args=["opmail", "unlock-admin", "admin"])
    assert result.exit_code == 0, result.output
    assert "Admin 'admin' unlocked" in result.output
    assert lock_state(app) == (0, None)
    assert AdminClient(client).login().status_code == 302


def test_unlock_unknown_admin_fails(runner, admin_user):
    result = runner.invoke(args=["opmail", "unlock-admin", "nobody"])
    assert result.exit_code == 1
    assert "There is no admin 'nobody'." in result.output


# --- the delete dialogs share the login's counter ----------------------------------------------


def test_wrong_delete_passwords_lock_the_dialog_and_the_login(app, admin, client, jane):
    url = f"/admin/accounts/delete/?id={jane}"
    for _ in range(4):
        assert admin.post(url, {"admin_password": "not it"}).status_code == 422
    locked = admin.post(url, {"admin_password": "not it"}, headers={"Referer": f"http://localhost{url}"})
    assert locked.status_code == 302 and locked.location == url
    before = snapshot(app)
    assert LOCKED.format(30) in admin.get(url).text  # the dialog page says why
    # The right password now deletes nothing either.
    admin.post(url, {"admin_password": ADMIN_PASSWORD})
    assert snapshot(app) == before
    # ...and the same admin cannot log in elsewhere until the lock is over.
    other = AdminClient(client.application.test_client())
    assert other.login().status_code == 429


def test_locked_bulk_delete_over_htmx_is_a_toast_and_deletes_nothing(app, admin, jane):
    set_lock_state(app, 5, locked_for=100)
    before = snapshot(app)
    response = admin.post(
        "/admin/accounts/action/",
        {"action": "delete", "rowid": [jane], "admin_password": ADMIN_PASSWORD, "url": "/admin/accounts/"},
        htmx=True,
    )
    assert response.status_code == 204
    toast = json.loads(response.headers["HX-Trigger"])["opmail:toast"]
    assert toast["category"] == "error"
    assert toast["message"].startswith("Too many failed attempts: try again in")
    assert snapshot(app) == before
    assert rows(app, sa.select(MailAccount.id)) == [(jane,)]


def test_empty_delete_password_is_not_counted(app, admin, jane):
    for _ in range(6):
        admin.post(f"/admin/accounts/delete/?id={jane}", {"admin_password": ""})
    assert lock_state(app) == (0, None)
