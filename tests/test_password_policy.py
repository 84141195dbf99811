"""The password policy (OPMAIL_PASSWORD_MIN_LENGTH): every password typed here is measured, a hash
or plaintext the Panel sends is not, and a bad setting stops the start."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from opmail.auth import create_first_admin, set_admin_password
from opmail.config import ConfigError
from opmail.models import Admin, MailAccount
from opmail.passwords import generate_password, hash_password, verify_password
from opmail.rules import accounts
from tests.conftest import make_app
from tests.helpers import (
    SYNC_SECRET,
    add_account,
    add_domain,
    opened_version,
    rows,
    snapshot,
    start_up_errors,
    sync_call,
)
from tests.test_csv import CONFIRM, HEADER, problems_on, token_of, upload

SHORT = "nine char"  # 9 characters: one short of the default
MESSAGE = "The password must be at least 10 characters long (it has 9)."


def stored_password(app, email: str) -> str:
    return rows(app, sa.select(MailAccount.password).where(MailAccount.email == email))[0][0]


# --- the setting ------------------------------------------------------------------------------------


def test_the_default_minimum_is_10(app):
    assert app.config["OPMAIL_PASSWORD_MIN_LENGTH"] == 10


@pytest.mark.parametrize("value", ["0", "73", "ten", "-1", "", "1.5", 0, 100])
def test_a_bad_minimum_refuses_to_start(tmp_path, value):
    with pytest.raises(ConfigError, match="OPMAIL_PASSWORD_MIN_LENGTH must be a whole number of characters from 1 to 72"):
        make_app(f"sqlite:///{tmp_path}/x.db", tmp_path, OPMAIL_PASSWORD_MIN_LENGTH=value)


def test_a_bad_minimum_in_the_environment_is_one_line_at_start(tmp_path):
    assert start_up_errors(tmp_path, OPMAIL_PASSWORD_MIN_LENGTH="80") == [
        "opmail: OPMAIL_PASSWORD_MIN_LENGTH must be a whole number of characters from 1 to 72 (got '80')."
    ]


@pytest.mark.parametrize("value", ["1", "72", " 12 "])
def test_the_minimum_from_the_environment_is_a_number(tmp_path, value):
    app = make_app(f"sqlite:///{tmp_path}/x.db", tmp_path, OPMAIL_PASSWORD_MIN_LENGTH=value)
    assert app.config["OPMAIL_PASSWORD_MIN_LENGTH"] == int(value)


def test_generated_passwords_are_long_random_letters_and_digits():
    made = {generate_password() for _ in range(50)}
    assert len(made) == 50
    assert all(len(p) == 20 and p.isascii() and p.isalnum() for p in made)
    assert len(generate_password(40)) == 40


# --- Add Account --------------------------------------------------------------------------------------


def test_add_account_refuses_a_short_password_and_writes_nothing(app, admin):
    add_domain(app)
    before = snapshot(app)
    response = admin.post("/admin/accounts/new/", {"email": "jane@example.com", "password": SHORT, "quota_mb": "0"})
    assert response.status_code == 422
    assert MESSAGE in response.text
    assert snapshot(app) == before


def test_add_account_counts_characters_not_bytes(app, admin):
    add_domain(app)
    response = admin.post("/admin/accounts/new/", {"email": "jane@example.com", "password": "ééééééééé", "quota_mb": "0"})
    assert response.status_code == 422 and MESSAGE in response.text
    done = admin.post("/admin/accounts/new/", {"email": "jane@example.com", "password": "éééééééééé", "quota_mb": "0"})
    assert done.status_code == 302
    assert verify_password("éééééééééé", stored_password(app, "jane@example.com"))


@pytest.mark.parametrize("app_overrides", [{"OPMAIL_PASSWORD_MIN_LENGTH": 4}])
def test_the_configured_minimum_is_the_one_applied(app, admin):
    add_domain(app)
    short = admin.post("/admin/accounts/new/", {"email": "jane@example.com", "password": "abc", "quota_mb": "0"})
    assert short.status_code == 422
    assert "The password must be at least 4 characters long (it has 3)." in short.text
    assert admin.post("/admin/accounts/new/", {"email": "jane@example.com", "password": "abcd", "quota_mb": "0"}).status_code == 302


# --- Reset Password -----------------------------------------------------------------------------------


def test_reset_password_refuses_a_short_one_and_keeps_the_old(app, admin):
    add_domain(app)
    jane = add_account(app, "jane@example.com", password="old password")
    url, version = f"/admin/accounts/password/?id={jane}", opened_version(admin, jane)
    before = snapshot(app)
    response = admin.post(url, {"new_password": SHORT, "confirm_password": SHORT, "version": version})
    assert response.status_code == 422
    assert MESSAGE in response.text
    assert snapshot(app) == before
    assert verify_password("old password", stored_password(app, "jane@example.com"))


def test_the_rule_refuses_a_short_password_whoever_calls_it(app):
    add_domain(app)
    with app.app_context(), pytest.raises(Exception, match="at least 10 characters"):
        accounts.create_account("jane@example.com", "x")


# --- CSV import ---------------------------------------------------------------------------------------


def test_import_lists_a_short_plaintext_and_writes_nothing(app, admin):
    add_domain(app)
    before = snapshot(app)
    preview = upload(admin, HEADER + f"ann@example.com,{SHORT},0,,\nbob@example.com,long enough pw,0,,\n")
    assert problems_on(preview) == [("2", "password", MESSAGE)]
    assert 'name="token"' not in preview.text  # no Import button
    assert snapshot(app) == before


def test_import_takes_any_hash_the_file_carries(app, admin):
    """A hash cannot be measured: it was made elsewhere, under that system's policy."""
    add_domain(app)
    hashed = hash_password("x", "BLF-CRYPT", bcrypt_rounds=4)
    preview = upload(admin, HEADER + f"ann@example.com,{hashed},0,,\n")
    assert 'id="opmail-import-problems"' not in preview.text
    assert admin.post(CONFIRM, {"token": token_of(preview)}).status_code == 302
    assert verify_password("x", stored_password(app, "ann@example.com"))


# --- admins -------------------------------------------------------------------------------------------


def test_create_admin_refuses_a_short_password(app, runner):
    result = runner.invoke(args=["opmail", "create-admin", "bob", "--password-stdin"], input=f"{SHORT}\n")
    assert result.exit_code == 1
    assert MESSAGE in result.output and "Traceback" not in result.output
    assert rows(app, sa.select(Admin.username)) == []


def test_changing_an_admin_password_applies_the_policy(app):
    with app.app_context():
        set_admin_password("bob", "a long admin password")
        with pytest.raises(Exception, match="at least 10 characters"):
            set_admin_password("bob", SHORT)
    stored = rows(app, sa.select(Admin.password).where(Admin.username == "bob"))[0][0]
    assert verify_password("a long admin password", stored)


@pytest.mark.parametrize("app_overrides", [{"OPMAIL_PASSWORD_MIN_LENGTH": 30}])
def test_first_admin_gets_a_password_the_policy_accepts(app, runner):
    result = runner.invoke(args=["opmail", "first-admin"])
    assert result.exit_code == 0, result.output
    password = next(line for line in result.output.splitlines() if "Password:" in line).split(": ", 1)[1]
    assert len(password) == 30
    assert verify_password(password, rows(app, sa.select(Admin.password))[0][0])
    with app.app_context():
        assert create_first_admin() is None


# --- the Panel's webhook: not measured ----------------------------------------------------------------


@pytest.fixture
def app_overrides():
    return {"MAIL_SYNC_SECRET": SYNC_SECRET}


@pytest.mark.parametrize("password", ["x", hash_password("x", "BLF-CRYPT", bcrypt_rounds=4)], ids=["plain", "hash"])
def test_the_panel_password_is_its_own_policy(app, client, password):
    add_domain(app)
    created = sync_call(client, {"action": "create", "email": "jane@example.com", "password": password})
    assert created.status_code == 200, created.text
    assert verify_password("x", stored_password(app, "jane@example.com"))
    changed = sync_call(client, {"action": "password", "email": "jane@example.com", "password": "y"})
    assert changed.status_code == 200
    assert verify_password("y", stored_password(app, "jane@example.com"))
