"""Admin two-factor authentication: enrolment, the code at login, replay guard, recovery codes, reset."""

from __future__ import annotations

import json
import re
import time

import pyotp
import pytest
import sqlalchemy as sa

from opmail import ConfigError, admin_2fa
from opmail.addresses import InvalidInput
from opmail.auth import PENDING_KEY
from opmail.db import get_engine, get_session
from opmail.models import Admin, AdminEvent
from tests.conftest import ADMIN_PASSWORD, AdminClient, csrf_from, log_in, make_app
from tests.helpers import rows, snapshot
from tests.test_auth import admin_urls
from tests.test_csrf import post_endpoints

CODE_STEP = "/admin/login/code"
PAGE = "/admin/two-factor/"


@pytest.fixture(autouse=True)
def steady_clock():
    """Start each test early in a 30 s TOTP step, so "this step" and "the next" mean what they say."""
    left = 30 - time.time() % 30
    if left < 5:
        time.sleep(left + 0.2)


def code(secret: str, offset: int = 0) -> str:
    """The code of the current time step plus ``offset`` (±1 is inside the accepted window)."""
    return pyotp.TOTP(secret).at(time.time(), counter_offset=offset)


def admin_row(app) -> dict:
    columns = (Admin.totp_secret, Admin.totp_last_step, Admin.totp_recovery_codes, Admin.failed_logins)
    return rows(app, sa.select(*columns))[0]._asdict()


def shown_key(admin: AdminClient) -> str:
    """Set up 2FA on the page, like a user, and read the key it shows (without spaces)."""
    started = admin.post(PAGE + "start/")
    assert started.status_code == 302 and started.location == PAGE
    page = admin.get(PAGE)
    return re.search(r"data-totp-key>([A-Z2-7 ]+)<", page.text).group(1).replace(" ", "")


def enrol(admin: AdminClient) -> tuple[str, list[str]]:
    """Turn 2FA on through the page, like a user: read the key, type the app's code."""
    secret = shown_key(admin)
    # The previous step's code (still accepted): the current one stays free for a login next.
    done = admin.post(PAGE + "enable/", {"code": code(secret, -1)})
    assert done.status_code == 200, done.text
    return secret, re.findall(r"<li>([a-z0-9]{5}-[a-z0-9]{5})</li>", done.text)


def password_step(client) -> AdminClient:
    """A fresh browser that gave the right password: the code step is next."""
    user = AdminClient(client)
    response = user.login()
    assert response.status_code == 302 and response.location == CODE_STEP
    return user


def send_code(user: AdminClient, value: str, recovery: bool = False):
    url = CODE_STEP + ("?recovery=1" if recovery else "")
    field = "recovery_code" if recovery else "code"
    return user.client.post(url, data={field: value, "csrf_token": user.token})


def logged_in(user: AdminClient) -> bool:
    return user.client.get("/admin/").status_code == 200


@pytest.fixture
def enrolled(app, admin):
    """2FA on for "admin" (enrolled through the page); its key and recovery codes."""
    return enrol(admin)


# --- enrolment -------------------------------------------------------------------------------------


def test_enrolment_page_shows_the_qr_code_and_the_key(app, admin):
    first = admin.get(PAGE)
    assert "Set up two-factor authentication</button>" in first.text and "data-totp-key" not in first.text
    assert admin.post(PAGE + "start/").location == PAGE
    page = admin.get(PAGE)
    assert page.status_code == 200
    assert re.search(r'<svg [^>]*class="segno"', page.text)  # drawn on the server, inline
    assert "<title>QR code for your authenticator app</title>" in page.text
    key = re.search(r"data-totp-key>([A-Z2-7 ]+)<", page.text).group(1)
    assert re.fullmatch(r"([A-Z2-7]{4} ){7}[A-Z2-7]{4}", key)  # 32 characters in groups of 4
    assert 'autocomplete="one-time-code"' in page.text and 'inputmode="numeric"' in page.text
    assert admin.get(PAGE).text.count(key) == 1  # a reload keeps the key already scanned
    admin.post(PAGE + "start/")  # a second window, or a double click: still the same key
    assert admin.get(PAGE).text.count(key) == 1
    assert "Two-factor authentication: off" in page.text  # the navbar link


def test_the_key_being_enrolled_stays_on_the_server(app, admin):
    """Until a code confirms it, the key waits on the admin's row: the session cookie (signed, not
    encrypted) never carries it, and a GET of the page makes none."""
    before = snapshot(app)
    admin.get(PAGE)
    assert snapshot(app) == before
    secret = shown_key(admin)
    assert rows(app, sa.select(Admin.totp_pending_secret, Admin.totp_secret)) == [(secret, None)]
    cookie = admin.client.get_cookie("session").value
    session = app.session_interface.get_signing_serializer(app).loads(cookie)
    assert secret not in json.dumps(session) and secret not in cookie
    admin.post(PAGE + "enable/", {"code": code(secret)})
    assert rows(app, sa.select(Admin.totp_pending_secret, Admin.totp_secret)) == [(None, secret)]


def test_a_reset_drops_the_key_being_enrolled(app, admin, runner):
    key = shown_key(admin)
    assert runner.invoke(args=["opmail", "reset-admin-2fa", "admin"]).exit_code == 0
    assert rows(app, sa.select(Admin.totp_pending_secret)) == [(None,)]
    page = log_in(app.test_client()).get(PAGE)
    assert "Set up two-factor authentication</button>" in page.text and key not in page.text


def test_enrolment_needs_a_valid_code_before_it_is_on(app, admin):
    secret = shown_key(admin)
    before = snapshot(app)
    for typed, message in [("000000", admin_2fa.WRONG_CODE), ("12345", admin_2fa.BAD_CODE)]:
        if typed == code(secret) or typed == code(secret, -1) or typed == code(secret, 1):
            continue  # one chance in a million: 000000 is the right code
        refused = admin.post(PAGE + "enable/", {"code": typed})
        assert refused.status_code == 422
        assert message in refused.text
    assert snapshot(app) == before  # still off, nothing written

    done = admin.post(PAGE + "enable/", {"code": code(secret)})
    assert done.status_code == 200
    codes = re.findall(r"<li>([a-z0-9]{5}-[a-z0-9]{5})</li>", done.text)
    assert len(set(codes)) == 8
    assert "they are not shown again" in done.text
    assert admin_row(app)["totp_secret"] == secret
    again = admin.get(PAGE)
    assert "Two-factor authentication is <strong>on</strong>" in again.text
    assert not any(c in again.text for c in codes)  # shown once


def test_enrolling_ends_the_admins_other_sessions_but_not_this_one(app, admin, client):
    elsewhere = log_in(app.test_client())
    enrol(admin)
    assert logged_in(admin)
    assert not logged_in(elsewhere)


# --- the code at login ------------------------------------------------------------------------------


def test_login_needs_the_code_after_the_password(app, enrolled):
    secret, _ = enrolled
    user = password_step(app.test_client())
    assert not logged_in(user)  # the password alone is not a login
    page = user.client.get(CODE_STEP)
    assert page.status_code == 200
    assert 'autocomplete="one-time-code"' in page.text and 'inputmode="numeric"' in page.text
    assert send_code(user, code(secret)).location == "/admin/"
    assert logged_in(user)


def test_login_keeps_next_through_the_code_step(app, enrolled):
    secret, _ = enrolled
    client = app.test_client()
    token = csrf_from(client.get("/admin/login").text)
    step = client.post(
        "/admin/login?next=/admin/accounts/",
        data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token},
    )
    assert step.location == CODE_STEP + "?next=/admin/accounts/"
    token = csrf_from(client.get(step.location).text)  # a fresh session, a fresh token
    done = client.post(step.location, data={"code": code(secret), "csrf_token": token})
    assert done.location == "/admin/accounts/"


def test_replayed_code_is_refused(app, enrolled):
    secret, _ = enrolled
    used = code(secret)
    first = password_step(app.test_client())
    assert send_code(first, used).status_code == 302
    second = password_step(app.test_client())
    replay = send_code(second, used)
    assert replay.status_code == 401
    assert admin_2fa.USED_CODE in replay.text
    assert not logged_in(second)


def test_older_code_after_a_newer_one_is_refused(app, enrolled):
    secret, _ = enrolled
    newer, older = code(secret, 1), code(secret)
    assert send_code(password_step(app.test_client()), newer).status_code == 302
    late = password_step(app.test_client())
    refused = send_code(late, older)  # still inside the clock-drift window, but older
    assert refused.status_code == 401 and admin_2fa.USED_CODE in refused.text
    assert not logged_in(late)
    assert admin_row(app)["totp_last_step"] == pyotp.TOTP(secret).timecode(time.time()) + 1


def test_the_step_check_is_in_the_update_not_in_what_was_read(app, enrolled):
    """Two requests with the same code: the second read the row before the first wrote it."""
    secret, _ = enrolled
    step = pyotp.TOTP(secret).timecode(time.time())
    with app.app_context():
        stale = get_session().scalar(sa.select(Admin))
        assert stale.totp_last_step < step
        with get_engine().begin() as connection:  # the first request claims the step meanwhile
            connection.execute(sa.update(Admin).values(totp_last_step=step))
        with pytest.raises(InvalidInput, match="used already"):
            admin_2fa.verify_code(stale, code(secret))


def wrong_code(secret: str) -> str:
    near = {code(secret, offset) for offset in (-1, 0, 1)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in near)


@pytest.mark.parametrize(
    "typed",
    [
        lambda c: "",
        lambda c: c[:5],
        lambda c: c + "7",
        lambda c: c.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")),  # Arabic-Indic digits
        lambda c: c.translate(str.maketrans("0123456789", "０１２３４５６７８９")),  # full-width
        lambda c: f"{c[:2]} {c[2:]}",
        lambda c: "abcdef",
        lambda c: c + "\n",
        lambda c: " " + c,
        lambda c: c[:3] + "\u200b" + c[3:],  # zero-width space
    ],
    ids=["empty", "5 digits", "7 digits", "arabic-indic", "full-width", "space inside",
         "letters", "trailing newline", "leading space", "zero-width"],
)
def test_only_six_ascii_digits_are_a_code(app, enrolled, typed):
    secret, _ = enrolled
    user = password_step(app.test_client())
    before = admin_row(app)
    refused = send_code(user, typed(code(secret)))
    assert refused.status_code == 401
    assert admin_2fa.BAD_CODE in refused.text
    assert not logged_in(user)
    assert admin_row(app) == before  # not counted as a guess, no step claimed
    assert send_code(user, code(secret)).status_code == 302  # still on the code step


def test_wrong_codes_count_toward_the_lock_and_the_password_does_not_reset_it(app, enrolled):
    secret, _ = enrolled
    user = password_step(app.test_client())
    for _ in range(3):
        refused = send_code(user, wrong_code(secret))
        assert refused.status_code == 401 and admin_2fa.WRONG_CODE in refused.text
    # Giving the password again must not wipe the count between guesses.
    user = password_step(app.test_client())
    assert admin_row(app)["failed_logins"] == 3
    assert send_code(user, wrong_code(secret)).status_code == 401
    locked = send_code(user, wrong_code(secret))
    assert locked.status_code == 429
    assert "Too many failed attempts: try again in 30 s." in locked.text
    # Locked: even the right code waits.
    assert send_code(user, code(secret)).status_code == 429
    assert not logged_in(user)


def test_the_right_code_forgives_earlier_wrong_ones(app, enrolled):
    secret, _ = enrolled
    user = password_step(app.test_client())
    send_code(user, wrong_code(secret))
    assert admin_row(app)["failed_logins"] == 1
    assert send_code(user, code(secret)).status_code == 302
    assert admin_row(app)["failed_logins"] == 0


def test_the_code_step_expires_after_five_minutes(app, enrolled):
    secret, _ = enrolled
    user = password_step(app.test_client())
    with user.client.session_transaction() as session:
        admin_id, version, started = session[PENDING_KEY]
        session[PENDING_KEY] = [admin_id, version, started - 301]
    late = send_code(user, code(secret))
    assert late.status_code == 302 and late.location == "/admin/login"
    assert "Too slow" in user.client.get("/admin/login").text
    assert not logged_in(user)
    assert admin_row(app)["totp_last_step"] < pyotp.TOTP(secret).timecode(time.time())  # unspent


def test_code_step_without_a_password_first_sends_to_the_login(client, admin_user):
    response = client.get(CODE_STEP)
    assert response.status_code == 302 and response.location == "/admin/login"


# --- recovery codes ---------------------------------------------------------------------------------


def test_recovery_code_works_once(app, enrolled):
    _, codes = enrolled
    user = password_step(app.test_client())
    toggle = user.client.get(CODE_STEP)
    assert 'href="/admin/login/code?recovery=1"' in toggle.text
    assert 'name="recovery_code"' in user.client.get(CODE_STEP + "?recovery=1").text
    used = send_code(user, codes[0].upper(), recovery=True)  # read off paper: case does not matter
    assert used.status_code == 302
    assert "You logged in with a recovery code: 7 left." in user.client.get("/admin/").text
    assert len(json.loads(admin_row(app)["totp_recovery_codes"])) == 7

    again = password_step(app.test_client())
    refused = send_code(again, codes[0], recovery=True)
    assert refused.status_code == 401 and admin_2fa.WRONG_RECOVERY in refused.text
    assert not logged_in(again)
    assert len(json.loads(admin_row(app)["totp_recovery_codes"])) == 7
    assert admin_row(app)["failed_logins"] == 1  # a wrong recovery code is a guess too
    assert send_code(again, codes[1], recovery=True).status_code == 302


@pytest.mark.parametrize("typed", ["", "abc", "abcde-fghjk-mnpqr", "0o1l1-0o1l1", "ábcde-fghjk"])
def test_malformed_recovery_code_is_refused_with_a_message(app, enrolled, typed):
    user = password_step(app.test_client())
    before = admin_row(app)
    refused = send_code(user, typed, recovery=True)
    assert refused.status_code == 401 and admin_2fa.BAD_RECOVERY in refused.text
    assert admin_row(app) == before


def test_recovery_codes_are_stored_hashed(app, enrolled):
    _, codes = enrolled
    stored = json.dumps(snapshot(app), default=str)
    for shown in codes:
        assert shown not in stored and shown.replace("-", "") not in stored
    assert len(json.loads(admin_row(app)["totp_recovery_codes"])) == 8


def test_new_recovery_codes_need_the_password_and_replace_the_old(app, admin, enrolled):
    _, old = enrolled
    before = snapshot(app)
    wrong = admin.post(PAGE + "recovery-codes/", {"admin_password": "not it"})
    assert wrong.status_code == 422 and "Wrong admin password" in wrong.text
    empty = admin.post(PAGE + "recovery-codes/", {"admin_password": ""})
    assert empty.status_code == 422 and "Enter your admin password." in empty.text
    assert snapshot(app) == before
    done = admin.post(PAGE + "recovery-codes/", {"admin_password": ADMIN_PASSWORD})
    new = re.findall(r"<li>([a-z0-9]{5}-[a-z0-9]{5})</li>", done.text)
    assert len(new) == 8 and not set(new) & set(old)
    user = password_step(app.test_client())
    assert send_code(user, old[2], recovery=True).status_code == 401
    assert send_code(user, new[2], recovery=True).status_code == 302


# --- turning off, the reset command ------------------------------------------------------------------


def test_turning_off_needs_the_password(app, admin, enrolled):
    before = snapshot(app)
    wrong = admin.post(PAGE + "disable/", {"admin_password": "not it"})
    assert wrong.status_code == 422
    assert "Wrong admin password: two-factor authentication stays on." in wrong.text
    assert snapshot(app) == before
    done = admin.post(PAGE + "disable/", {"admin_password": ADMIN_PASSWORD})
    assert done.status_code == 302
    assert admin_row(app) | {"failed_logins": 0} == {
        "totp_secret": None, "totp_last_step": None, "totp_recovery_codes": None, "failed_logins": 0
    }
    assert AdminClient(app.test_client()).login().location == "/admin/"  # password alone again


def test_reset_admin_2fa_command(app, admin, enrolled, runner):
    result = runner.invoke(args=["opmail", "reset-admin-2fa", "admin"])
    assert result.exit_code == 0, result.output
    assert "Two-factor authentication is off for admin 'admin'" in result.output
    row = admin_row(app)
    assert (row["totp_secret"], row["totp_last_step"], row["totp_recovery_codes"]) == (None, None, None)
    assert not logged_in(admin)  # its sessions ended
    assert AdminClient(app.test_client()).login().location == "/admin/"


def test_reset_ends_a_pending_code_step(app, enrolled, runner):
    secret, _ = enrolled
    user = password_step(app.test_client())
    runner.invoke(args=["opmail", "reset-admin-2fa", "admin"])
    assert send_code(user, code(secret)).location == "/admin/login"
    assert not logged_in(user)


def test_2fa_changes_are_in_the_audit_log_without_the_key_or_codes(app, admin, enrolled, runner):
    secret, codes = enrolled
    new_codes = admin.post(PAGE + "recovery-codes/", {"admin_password": ADMIN_PASSWORD}).text
    admin.post(PAGE + "disable/", {"admin_password": ADMIN_PASSWORD})
    second_secret, _ = enrol(admin)
    assert runner.invoke(args=["opmail", "reset-admin-2fa", "admin"]).exit_code == 0
    events = rows(app, sa.select(AdminEvent.actor, AdminEvent.action, AdminEvent.targets).order_by(AdminEvent.id))
    assert events == [
        ("admin", "admin.2fa_on", "admin"),
        ("admin", "admin.2fa_codes", "admin"),
        ("admin", "admin.2fa_off", "admin"),
        ("admin", "admin.2fa_on", "admin"),
        ("cli", "admin.2fa_reset", "admin"),
    ]
    stored = repr(rows(app, sa.select(AdminEvent)))
    for kept_secret in (secret, second_secret, *codes, *re.findall(r"<li>([a-z0-9]{5}-[a-z0-9]{5})</li>", new_codes)):
        assert kept_secret not in stored


def test_reset_admin_2fa_unknown_name(runner, admin_user):
    result = runner.invoke(args=["opmail", "reset-admin-2fa", "nobody"])
    assert result.exit_code == 1
    assert "There is no admin 'nobody'." in result.output


# --- OPMAIL_REQUIRE_2FA -----------------------------------------------------------------------------


def test_require_2fa_allows_only_the_enrolment_page_until_it_is_on(app, admin):
    app.config["OPMAIL_REQUIRE_2FA"] = True
    for url in ["/admin/", "/admin/accounts/", "/admin/domains/", "/admin/dovecot/"]:
        response = admin.get(url)
        assert response.status_code == 302 and response.location == PAGE, url
    assert admin.get("/admin/accounts/?q=x", htmx=True).headers["HX-Redirect"] == PAGE
    page = admin.get(PAGE)
    assert page.status_code == 200
    assert "This site requires two-factor authentication" in page.text
    enrol(admin)
    assert admin.get("/admin/accounts/").status_code == 200
    assert admin.post("/admin/logout").status_code == 302


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_require_2fa_must_be_a_flag(tmp_path, value):
    with pytest.raises(ConfigError, match="OPMAIL_REQUIRE_2FA must be true or false"):
        make_app(f"sqlite:///{tmp_path}/x.db", tmp_path, OPMAIL_REQUIRE_2FA=value)


# --- CSRF and the enumerations other tests rely on --------------------------------------------------


def test_new_pages_are_in_the_csrf_and_header_enumerations(app):
    posts = post_endpoints(app)
    for url in [CODE_STEP, PAGE + "start/", PAGE + "enable/", PAGE + "disable/", PAGE + "recovery-codes/"]:
        assert url in posts, url
    assert PAGE in admin_urls(app)


@pytest.mark.parametrize("url", [PAGE + "start/", PAGE + "enable/", PAGE + "disable/", PAGE + "recovery-codes/"])
def test_each_new_form_needs_its_csrf_token(app, admin, url):
    if url != PAGE + "start/":
        shown_key(admin)  # a key waiting, so enable/ would act
    before = snapshot(app)
    form = {"code": "123456", "admin_password": ADMIN_PASSWORD}
    assert admin.client.post(url, data=form).status_code == 400
    assert admin.client.post(url, data={**form, "csrf_token": "wrong"}).status_code == 400
    assert snapshot(app) == before


def test_code_step_needs_its_csrf_token(app, enrolled):
    secret, _ = enrolled
    user = password_step(app.test_client())
    before = admin_row(app)
    assert user.client.post(CODE_STEP, data={"code": code(secret)}).status_code == 400
    assert admin_row(app) == before and not logged_in(user)
